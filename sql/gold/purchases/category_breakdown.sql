-- Per product category and customer segment: valid purchases, units and revenue.
SELECT category, segment, COUNT(*) AS transactions, SUM(quantity) AS units, SUM(total) AS revenue,
       AVG(total) AS average_ticket
FROM purchases.purchase_events
WHERE quantity >= 0 AND total = quantity * unit_price - discount
GROUP BY category, segment
ORDER BY category, segment
