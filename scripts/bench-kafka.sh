#!/usr/bin/env bash
# Transport benchmark: binlog -> binlake source -> Kafka -> consumer, on librdkafka's mock
# cluster (or the broker in KAFKA_BOOTSTRAP_SERVERS), release build, a private MariaDB.
#  1. throughput: the 1.3M-change workload (sql/workload/bench_replay.sql) published, every
#     message acknowledged;
#  2. latency: a writer commits 5,000 rows/s for 10 s, each row stamped with its commit time
#     in ms; the consumer reports commit-to-consumer latency p50/p99 while capture runs.
# The sink (Kafka -> lake) is not built yet: the consumer stands in for it.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/binlake/target}
cargo build --release --quiet
bin="$CARGO_TARGET_DIR/release/binlake"
dir=$(mktemp -d)
port=${PORT:-13394}
mock_pid=""
source_pid=""
cleanup() {
  [ -n "$source_pid" ] && kill "$source_pid" 2>/dev/null || true
  [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null || true
  scripts/mariadb.sh stop "$dir/db"
  rm -rf "$dir"
}
trap cleanup EXIT
scripts/mariadb.sh start "$dir/db" "$port" --max-binlog-size=1G

if [ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
  bootstrap=$KAFKA_BOOTSTRAP_SERVERS
else
  "$bin" bench mock-kafka > "$dir/mock.addr" 2>/dev/null &
  mock_pid=$!
  for _ in $(seq 1 100); do [ -s "$dir/mock.addr" ] && break; sleep 0.1; done
  bootstrap=$(cat "$dir/mock.addr")
fi
prefix="bench$$"
cat > "$dir/source.toml" <<TOML
[source]
url = "mysql://root@127.0.0.1:$port"
server_id = 9200
snapshot = "never"
checkpoint = "state"
include = ["binlake_bench.*"]
heartbeat_secs = 1
[transport]
kind = "kafka"
bootstrap_servers = "$bootstrap"
topic_prefix = "$prefix"
tombstones_on_delete = false
TOML

echo "== 1. throughput: 1.3M row changes, source -> Kafka (acknowledged)"
scripts/mariadb.sh sql "$dir/db" < sql/workload/bench_replay.sql
/usr/bin/time -f "   source: %e s wall, peak RSS %M KB" "$bin" source --config "$dir/source.toml" --exit-when-caught-up 2> "$dir/source.log" || { cat "$dir/source.log"; exit 1; }
grep wall "$dir/source.log"
secs=$(grep wall "$dir/source.log" | awk '{print $2}')
echo "   source -> Kafka: $(awk "BEGIN{printf \"%d\", 1300000/$secs}") row changes/s, every message acknowledged"

echo "== 2. latency: 5,000 rows/s for 10 s while capture runs"
scripts/mariadb.sh sql "$dir/db" <<'SQL'
USE binlake_bench;
CREATE TABLE lat (id INT AUTO_INCREMENT PRIMARY KEY, created_ms BIGINT NOT NULL);
DELIMITER //
CREATE PROCEDURE steady()
BEGIN
  DECLARE i INT DEFAULT 0;
  WHILE i < 1000 DO
    START TRANSACTION;
    INSERT INTO lat (created_ms) SELECT ROUND(UNIX_TIMESTAMP(NOW(3)) * 1000) FROM seq_1_to_50;
    COMMIT;
    DO SLEEP(0.01);
    SET i = i + 1;
  END WHILE;
END //
DELIMITER ;
SQL
"$bin" source --config "$dir/source.toml" 2> "$dir/source2.log" &
source_pid=$!
# One warm-up row, so the topic exists and the consumer has joined before the clock starts.
scripts/mariadb.sh sql "$dir/db" -e "INSERT INTO binlake_bench.lat (created_ms) VALUES (ROUND(UNIX_TIMESTAMP(NOW(3)) * 1000))"
sleep 2
"$bin" bench consume --bootstrap-servers "$bootstrap" --topic "$prefix.binlake_bench.lat" --expect 50001 --latency-column created_ms --idle-secs 30 > "$dir/lat.out" &
consumer_pid=$!
sleep 4
start=$(date +%s.%N)
scripts/mariadb.sh sql "$dir/db" -e "USE binlake_bench; CALL steady()"
end=$(date +%s.%N)
echo "   writer: 50,000 rows in $(awk "BEGIN{printf \"%.1f\", $end-$start}") s"
wait "$consumer_pid"
kill -TERM "$source_pid"; wait "$source_pid" || true
sed 's/^/   /' "$dir/lat.out"
