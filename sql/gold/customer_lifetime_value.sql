-- Customer lifetime value: what each customer's paid orders are worth, net of refunds.
SELECT c.CustomerID AS customer_id,
       c.Name AS name,
       c.Country AS country,
       COUNT(o.OrderID) AS orders,
       COALESCE(SUM(CASE WHEN o.Status IN ('paid', 'shipped', 'delivered') THEN o.Total END), 0) AS lifetime_value,
       MIN(o.OrderDate) AS first_order,
       MAX(o.OrderDate) AS last_order
FROM online_store.Customers c
LEFT JOIN online_store.Orders o ON o.CustomerID = c.CustomerID
GROUP BY c.CustomerID, c.Name, c.Country
ORDER BY lifetime_value DESC, customer_id
