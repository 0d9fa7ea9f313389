-- Event bookings and their payments (the Synapse-style bookings fact pipeline).
-- `binlake generate --scenario bookings` runs its workload.
CREATE DATABASE IF NOT EXISTS bookings;
USE bookings;

CREATE TABLE bookings (
  order_id BIGINT AUTO_INCREMENT PRIMARY KEY,
  booking_time DATETIME(3) NOT NULL,
  customer_id INT NOT NULL,
  customer_name VARCHAR(100) NOT NULL,
  customer_email VARCHAR(150) NOT NULL,
  event_id INT NOT NULL,
  event_name VARCHAR(100) NOT NULL,
  event_location VARCHAR(100) NOT NULL,
  -- [{"seat_number": "A12", "price": 45.0}, ...]
  seats JSON NOT NULL
);

CREATE TABLE payments (
  payment_id BIGINT AUTO_INCREMENT PRIMARY KEY,
  order_id BIGINT NOT NULL,
  payment_time DATETIME(3) NOT NULL,
  amount DECIMAL(10,2) NOT NULL,
  payment_method VARCHAR(20) NOT NULL,
  payment_status VARCHAR(20) NOT NULL
);
