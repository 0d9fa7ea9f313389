-- A stream of orders with amounts and statuses (revenue per minute, fraud alerts).
-- `binlake generate --scenario orders_stream` runs its workload.
CREATE DATABASE IF NOT EXISTS orders_stream;
USE orders_stream;

CREATE TABLE orders (
  order_id BIGINT AUTO_INCREMENT PRIMARY KEY,
  customer_id INT NOT NULL,
  amount DECIMAL(10,2) NOT NULL,
  status ENUM('created','paid','cancelled','refunded') NOT NULL,
  created_at DATETIME(3) NOT NULL,
  updated_at DATETIME(3) NOT NULL
);
