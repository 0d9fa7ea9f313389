-- The online_store schema of the Debezium -> Kafka -> Spark -> ADLS e-commerce tutorial that
-- binlake replaces, with sample data. `binlake generate` runs its workload against it.
CREATE DATABASE IF NOT EXISTS online_store;
USE online_store;

CREATE TABLE Customers (
  CustomerID INT AUTO_INCREMENT PRIMARY KEY,
  Name VARCHAR(100) NOT NULL,
  Email VARCHAR(150) NOT NULL,
  Country VARCHAR(50) NOT NULL,
  City VARCHAR(50),
  CreatedAt DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  UpdatedAt TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)
);

CREATE TABLE Sellers (
  SellerID INT AUTO_INCREMENT PRIMARY KEY,
  Name VARCHAR(100) NOT NULL,
  Country VARCHAR(50) NOT NULL,
  Rating DECIMAL(3,2)
);

CREATE TABLE Products (
  ProductID INT AUTO_INCREMENT PRIMARY KEY,
  SellerID INT NOT NULL,
  Name VARCHAR(100) NOT NULL,
  Category VARCHAR(50) NOT NULL,
  Price DECIMAL(10,2) NOT NULL,
  Stock INT NOT NULL DEFAULT 0
);

CREATE TABLE Reasons (
  ReasonID INT PRIMARY KEY,
  Kind ENUM('cancel','refund') NOT NULL,
  Description VARCHAR(200) NOT NULL
);

CREATE TABLE Orders (
  OrderID BIGINT AUTO_INCREMENT PRIMARY KEY,
  CustomerID INT NOT NULL,
  OrderDate DATETIME(3) NOT NULL,
  Status ENUM('placed','paid','shipped','delivered','cancelled','refunded') NOT NULL,
  ReasonID INT NULL,
  Total DECIMAL(12,2) NOT NULL DEFAULT 0,
  UpdatedAt TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)
);

CREATE TABLE OrderItems (
  OrderItemID BIGINT AUTO_INCREMENT PRIMARY KEY,
  OrderID BIGINT NOT NULL,
  ProductID INT NOT NULL,
  Quantity INT NOT NULL,
  UnitPrice DECIMAL(10,2) NOT NULL
);

CREATE TABLE Payments (
  PaymentID BIGINT AUTO_INCREMENT PRIMARY KEY,
  OrderID BIGINT NOT NULL,
  Amount DECIMAL(12,2) NOT NULL,
  Method ENUM('card','paypal','bank_transfer','gift_card') NOT NULL,
  Status ENUM('authorized','captured','refunded','failed') NOT NULL,
  PaidAt DATETIME(3) NOT NULL
);

INSERT INTO Reasons VALUES
  (1, 'cancel', 'Customer changed their mind'),
  (2, 'cancel', 'Found a better price'),
  (3, 'cancel', 'Delivery too slow'),
  (4, 'refund', 'Item damaged'),
  (5, 'refund', 'Wrong item sent'),
  (6, 'refund', 'Not as described');

INSERT INTO Sellers (Name, Country, Rating) VALUES
  ('Nordic Goods', 'Sweden', 4.60), ('Casa Bella', 'Italy', 4.20), ('Maple Supply', 'Canada', 3.90),
  ('Lotus Traders', 'India', 4.75), ('Rio Market', 'Brazil', 4.05);

INSERT INTO Products (SellerID, Name, Category, Price, Stock) VALUES
  (1, 'Wool Blanket', 'Home', 59.90, 120), (1, 'Birch Cutting Board', 'Kitchen', 24.50, 300),
  (2, 'Espresso Maker', 'Kitchen', 89.00, 80), (2, 'Linen Shirt', 'Fashion', 45.00, 200),
  (3, 'Maple Syrup 500ml', 'Grocery', 12.75, 500), (3, 'Hiking Boots', 'Outdoor', 129.99, 60),
  (4, 'Silk Scarf', 'Fashion', 35.00, 150), (4, 'Masala Tea', 'Grocery', 8.40, 800),
  (5, 'Hammock', 'Outdoor', 74.00, 90), (5, 'Coffee Beans 1kg', 'Grocery', 21.30, 400),
  (1, 'Reading Lamp', 'Home', 39.00, 140), (2, 'Pasta Machine', 'Kitchen', 65.50, 70);

INSERT INTO Customers (Name, Email, Country, City) VALUES
  ('Ann Berg', 'ann@example.com', 'Sweden', 'Uppsala'), ('Bob Rossi', 'bob@example.com', 'Italy', 'Turin'),
  ('Chloe Martin', 'chloe@example.com', 'France', 'Lyon'), ('Dev Patel', 'dev@example.com', 'India', 'Pune'),
  ('Eva Silva', 'eva@example.com', 'Brazil', 'Recife'), ('Finn Walsh', 'finn@example.com', 'Ireland', 'Cork'),
  ('Gia Tran', 'gia@example.com', 'Vietnam', 'Hue'), ('Hugo Meyer', 'hugo@example.com', 'Germany', 'Bonn');
