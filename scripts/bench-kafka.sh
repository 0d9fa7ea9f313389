#!/usr/bin/env bash
# Transport benchmark: binlog -> binlake source -> Kafka -> consumer, on librdkafka's mock
# cluster (or the broker in KAFKA_BOOTSTRAP_SERVERS), release build, a private MariaDB.
#  1. throughput: the 1.3M-change workload (sql/workload/bench_replay.sql) published, every
#     message acknowledged;
#  2. latency: a writer commits 5,000 rows/s for 10 s, each row stamped with its commit time
#     in ms; the consumer reports commit-to-consumer latency p50/p99 while capture runs.
# The transport alone: `binlake bench consume` reads the topics, nothing is applied to a lake
# (scripts/bench-e2e.sh measures the sink, scripts/bench-sinks.sh a group of sinks).
. scripts/bench-common.sh 13394

start_kafka
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
$kafka_extra
TOML

echo "== 1. throughput: 1.3M row changes, source -> Kafka (acknowledged)"
scripts/mariadb.sh sql "$dir/db" < sql/workload/bench_replay.sql
/usr/bin/time -f "   source: %e s wall, peak RSS %M KB" "$bin" source --config "$dir/source.toml" --exit-when-caught-up 2> "$dir/source.log" || { cat "$dir/source.log"; exit 1; }
grep wall "$dir/source.log"
secs=$(grep wall "$dir/source.log" | awk '{print $2}')
echo "   source -> Kafka: $(awk "BEGIN{printf \"%d\", 1300000/$secs}") row changes/s, every message acknowledged"

echo "== 2. latency: 5,000 rows/s for 10 s while capture runs"
create_steady_writer
"$bin" source --config "$dir/source.toml" 2> "$dir/source2.log" &
source_pid=$!
pids+=("$source_pid")
# One warm-up row, so the topic exists and the consumer has joined before the clock starts.
scripts/mariadb.sh sql "$dir/db" -e "INSERT INTO binlake_bench.lat (created_ms) VALUES (ROUND(UNIX_TIMESTAMP(NOW(3)) * 1000))"
sleep 2
"$bin" bench consume --bootstrap-servers "$bootstrap" --topic "$prefix.binlake_bench.lat" --expect 50001 --latency-column created_ms --idle-secs 30 > "$dir/lat.out" &
consumer_pid=$!
sleep 4
start=$(date +%s.%N)
scripts/mariadb.sh sql "$dir/db" -e "USE binlake_bench; CALL steady(1000)"
end=$(date +%s.%N)
echo "   writer: 50,000 rows in $(awk "BEGIN{printf \"%.1f\", $end-$start}") s"
wait "$consumer_pid"
kill -TERM "$source_pid"; wait "$source_pid" || true
sed 's/^/   /' "$dir/lat.out"
