-- Per day: the total of valid purchases, the running total across days, the transactions.
SELECT day, total, SUM(total) OVER (ORDER BY day) AS running_total, transactions
FROM (
  SELECT CAST(ts AS DATE) AS day, SUM(total) AS total, COUNT(*) AS transactions
  FROM purchases.purchase_events
  WHERE quantity >= 0 AND total = quantity * unit_price - discount
  GROUP BY CAST(ts AS DATE)
) d
ORDER BY day
