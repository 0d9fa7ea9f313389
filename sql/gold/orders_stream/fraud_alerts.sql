-- Fraud score: amount > 5000 -> 4, > 3000 -> 3, > 2000 -> 2; +1 if cancelled or refunded.
-- An alert when the score is at least 3.
SELECT order_id, customer_id, amount, status, created_at, score
FROM (
  SELECT order_id, customer_id, amount, CAST(status AS VARCHAR) AS status, created_at,
         CASE WHEN amount > 5000 THEN 4 WHEN amount > 3000 THEN 3 WHEN amount > 2000 THEN 2 ELSE 0 END
         + CASE WHEN CAST(status AS VARCHAR) IN ('cancelled', 'refunded') THEN 1 ELSE 0 END AS score
  FROM orders_stream.orders
) scored
WHERE score >= 3
ORDER BY order_id
