-- Purchase events (the daily totals / category breakdown pipeline), a few of them invalid.
-- `binlake generate --scenario purchases` runs its workload.
CREATE DATABASE IF NOT EXISTS purchases;
USE purchases;

CREATE TABLE purchase_events (
  event_id BIGINT AUTO_INCREMENT PRIMARY KEY,
  ts DATETIME(3) NOT NULL,
  customer VARCHAR(50) NOT NULL,
  segment VARCHAR(20) NOT NULL,
  category VARCHAR(30) NOT NULL,
  quantity INT NOT NULL,
  unit_price DECIMAL(10,2) NOT NULL,
  discount DECIMAL(10,2) NOT NULL DEFAULT 0,
  total DECIMAL(12,2) NOT NULL
);
