-- Customer dimension, SCD type 4: every version of every customer with its validity interval,
-- deleted customers included.
SELECT CustomerID AS customer_id, Name AS name, Email AS email, Country AS country, City AS city,
       __start_at AS valid_from, __end_at AS valid_to, __end_at IS NULL AS is_current
FROM online_store.Customers__history
ORDER BY customer_id, valid_from
