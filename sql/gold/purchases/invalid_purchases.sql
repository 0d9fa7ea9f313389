-- Purchases that fail validation, with the reason.
SELECT event_id, ts, customer, category, quantity, unit_price, discount, total,
       CASE WHEN quantity < 0 THEN 'negative quantity'
            ELSE 'total is not quantity * unit_price - discount' END AS reason
FROM purchases.purchase_events
WHERE quantity < 0 OR total <> quantity * unit_price - discount
ORDER BY event_id
