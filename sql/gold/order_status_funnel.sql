-- Order status funnel: how many orders ever reached each status (from history), and where
-- they are now (from silver).
SELECT reached.status,
       reached.orders_reached,
       COALESCE(now.orders_now, 0) AS orders_now
FROM (SELECT CAST(Status AS VARCHAR) AS status, COUNT(DISTINCT OrderID) AS orders_reached
      FROM online_store.Orders__history GROUP BY CAST(Status AS VARCHAR)) reached
LEFT JOIN (SELECT CAST(Status AS VARCHAR) AS status, COUNT(*) AS orders_now
           FROM online_store.Orders GROUP BY CAST(Status AS VARCHAR)) now
  ON now.status = reached.status
ORDER BY CASE reached.status WHEN 'placed' THEN 1 WHEN 'paid' THEN 2 WHEN 'shipped' THEN 3
         WHEN 'delivered' THEN 4 WHEN 'cancelled' THEN 5 ELSE 6 END
