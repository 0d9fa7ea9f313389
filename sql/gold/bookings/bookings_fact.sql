-- One row per booked seat, with its payment when the payment came 0-2 minutes after the
-- booking; the columns of a Synapse-style bookings fact table.
WITH seats AS (
  SELECT b.order_id, b.booking_time, b.customer_id, b.customer_name, b.customer_email,
         b.event_id, b.event_name, b.event_location,
         unnest(json_array_elements(b.seats)) AS seat
  FROM bookings.bookings b
)
SELECT s.order_id,
       s.booking_time,
       s.customer_id,
       s.customer_name,
       s.customer_email,
       s.event_id,
       s.event_name,
       s.event_location,
       json_str(s.seat, 'seat_number') AS seat_number,
       CAST(json_num(s.seat, 'price') AS DECIMAL(10, 2)) AS seat_price,
       CASE WHEN s.event_name LIKE '%Concert%' THEN 'Music'
            WHEN s.event_name LIKE '%Match%' THEN 'Sports'
            WHEN s.event_name LIKE '%Play%' THEN 'Theatre'
            ELSE 'Other' END AS event_category,
       to_char(s.booking_time, '%A') AS booking_day_of_week,
       CAST(date_part('hour', s.booking_time) AS INT) AS booking_hour,
       p.payment_id,
       p.payment_time,
       p.amount,
       p.payment_method,
       CASE WHEN p.payment_method IN ('credit_card', 'debit_card') THEN 'card'
            WHEN p.payment_method IN ('paypal', 'apple_pay') THEN 'wallet'
            WHEN p.payment_method IS NULL THEN NULL
            ELSE 'other' END AS payment_type
FROM seats s
LEFT JOIN bookings.payments p
  ON p.order_id = s.order_id
 AND p.payment_time >= s.booking_time
 AND p.payment_time <= s.booking_time + INTERVAL '2 minutes'
