-- Customer dimension, SCD type 4: the current version of each customer (this table) and
-- every earlier version (dim_customer_history).
SELECT CustomerID AS customer_id, Name AS name, Email AS email, Country AS country, City AS city,
       _cdc_ts AS valid_from
FROM online_store.Customers
