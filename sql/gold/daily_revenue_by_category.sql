-- Daily revenue per product category: paid, shipped and delivered orders.
SELECT CAST(o.OrderDate AS DATE) AS day,
       p.Category AS category,
       SUM(i.Quantity * i.UnitPrice) AS revenue,
       COUNT(DISTINCT o.OrderID) AS orders
FROM online_store.Orders o
JOIN online_store.OrderItems i ON i.OrderID = o.OrderID
JOIN online_store.Products p ON p.ProductID = i.ProductID
WHERE o.Status IN ('paid', 'shipped', 'delivered')
GROUP BY CAST(o.OrderDate AS DATE), p.Category
ORDER BY day, category
