-- A queue-and-buy ticket sale: users arrive, wait, are served, buy or leave.
-- `binlake generate --scenario ticket_sales` runs its workload.
CREATE DATABASE IF NOT EXISTS ticket_sales;
USE ticket_sales;

CREATE TABLE queue (
  user_id BIGINT AUTO_INCREMENT PRIMARY KEY,
  arrived_at DATETIME(3) NOT NULL,
  served_at DATETIME(3) NULL,
  tickets INT NOT NULL DEFAULT 0,
  status ENUM('waiting','bought','left') NOT NULL
);
