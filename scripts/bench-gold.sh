#!/usr/bin/env bash
# Gold layer benchmark (release build, a private MariaDB, embedded transport, lake on disk):
#  1. the e-commerce models (sql/gold) refreshed over silver tables of 1M orders, 1M order
#     items, 500k payments and 100k customers: time per model;
#  2. freshness from a MySQL commit to the gold row that reflects it: a writer commits 5,000
#     rows/s for 30 s, each stamped with its commit time in ms; a model reads their newest
#     stamp, refreshed on commit; `binlake bench freshness --table gold.<model>` polls it.
. scripts/bench-common.sh 13396
scripts/mariadb.sh sql "$dir/db" < sql/online_store.sql
scripts/mariadb.sh sql "$dir/db" <<'SQL'
USE online_store;
INSERT INTO Customers (Name, Email, Country, City)
  SELECT CONCAT('Customer ', seq), CONCAT('c', seq, '@example.com'),
         ELT(seq % 5 + 1, 'Sweden', 'Italy', 'France', 'India', 'Brazil'), 'Town' FROM seq_1_to_100000;
INSERT INTO Orders (CustomerID, OrderDate, Status, Total)
  SELECT seq % 100000 + 1, NOW(3) - INTERVAL (seq % 30) DAY,
         ELT(seq % 6 + 1, 'placed', 'paid', 'shipped', 'delivered', 'cancelled', 'refunded'), seq % 500 + 0.99
  FROM seq_1_to_1000000;
INSERT INTO OrderItems (OrderID, ProductID, Quantity, UnitPrice)
  SELECT seq, seq % 12 + 1, seq % 4 + 1, seq % 100 + 0.5 FROM seq_1_to_1000000;
INSERT INTO Payments (OrderID, Amount, Method, Status, PaidAt)
  SELECT seq * 2, seq % 500 + 0.99, 'card', 'captured', NOW(3) FROM seq_1_to_500000;
CREATE DATABASE binlake_bench;
CREATE TABLE binlake_bench.lat (id INT AUTO_INCREMENT PRIMARY KEY, created_ms BIGINT NOT NULL);
SQL
mkdir -p "$dir/fresh"
echo "SELECT max(created_ms) AS newest, count(*) AS rows_seen FROM binlake_bench.lat" > "$dir/fresh/newest.sql"
config() { # name models refresh
  cat > "$dir/$1.toml" <<TOML
[source]
url = "mysql://root@127.0.0.1:$port"
server_id = 9500
snapshot = "never"
checkpoint = "state"
include = ["online_store.*", "binlake_bench.*"]
heartbeat_secs = 1
[transport]
kind = "embedded"
[lake]
url = "lake"
max_rows = 100000
max_latency_ms = ${MAX_LATENCY_MS:-500}
optimize_every_commits = 0
vacuum_every_commits = 0
[gold]
models = "$2"
refresh = "$3"
TOML
}
config load "$PWD/sql/gold" 1h
echo "== 1. gold refresh over 1M-row silver tables"
start=$(date +%s.%N)
"$bin" run --config "$dir/load.toml" --exit-when-caught-up 2> "$dir/load.log" || { cat "$dir/load.log"; exit 1; }
end=$(date +%s.%N)
echo "   loading silver (2.6M row changes, embedded): $(awk "BEGIN{printf \"%.1f\", $end-$start}") s"
"$bin" gold refresh --config "$dir/load.toml" | sed 's/^/   /'

echo "== 2. freshness from commit to gold at 5,000 row changes/s (refresh on commit)"
create_steady_writer
config fresh "$dir/fresh" on_commit
"$bin" run --config "$dir/fresh.toml" 2> "$dir/fresh.log" &
pids+=($!)
scripts/mariadb.sh sql "$dir/db" -e "INSERT INTO binlake_bench.lat (created_ms) VALUES (ROUND(UNIX_TIMESTAMP(NOW(3)) * 1000))"
sleep 5
start=$(date +%s.%N)
scripts/mariadb.sh sql "$dir/db" -e "USE binlake_bench; CALL steady(3000)" &
writer=$!
sleep 3
"$bin" bench freshness --config "$dir/fresh.toml" --table gold.newest --column newest --duration 25 | sed 's/^/   /'
wait "$writer"
end=$(date +%s.%N)
echo "   writer: 150,000 rows in $(awk "BEGIN{printf \"%.1f\", $end-$start}") s"
