-- Per hour of arrival: users who queued, tickets sold, average wait until served (seconds).
SELECT date_trunc('hour', arrived_at) AS hour,
       COUNT(*) AS total_users,
       SUM(tickets) AS tickets_sold,
       AVG(date_part('epoch', served_at) - date_part('epoch', arrived_at)) AS avg_wait_seconds
FROM ticket_sales.queue
GROUP BY date_trunc('hour', arrived_at)
ORDER BY hour
