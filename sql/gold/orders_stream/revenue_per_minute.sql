-- Revenue in 1-minute tumbling windows (orders not cancelled or refunded).
SELECT date_bin(INTERVAL '1 minute', created_at) AS minute,
       SUM(amount) AS revenue,
       COUNT(*) AS orders
FROM orders_stream.orders
WHERE CAST(status AS VARCHAR) NOT IN ('cancelled', 'refunded')
GROUP BY date_bin(INTERVAL '1 minute', created_at)
ORDER BY minute
