#!/usr/bin/env bash
# The whole path, MariaDB -> binlake source -> Kafka -> binlake sink -> Delta (local disk),
# release build, a private MariaDB, librdkafka's mock cluster in its own process (or the
# broker in KAFKA_BOOTSTRAP_SERVERS). One run; prints:
#  1. throughput on the 1.3M-change workload (sql/workload/bench_replay.sql: 1M inserts, 200k
#     updates, 100k deletes): source -> Kafka; then, on a real broker, Kafka -> lake (sink) on
#     its own, both at once (`binlake run`, fresh topics and lake), and the sink alone again
#     with binlake's default batch limits (`max_rows`, `max_batch_bytes`). The mock cluster
#     keeps 5 MB a partition, so the 1.3M changes do not stay in it (the sink stops on the
#     gap): there the lake side is measured in-process (`kind = "embedded"`) instead;
#  2. freshness: a writer commits 5,000 rows/s for 30 s (each row stamped with its commit time
#     in ms) while `binlake run` captures; `binlake bench freshness` polls silver every 100 ms
#     for the age of the newest visible row: p50/p99. Three times: with binlake's default
#     `[lake]` settings; with busy batches off (`busy_latency_ms = 1000`, the defaults before
#     2026-12-03); with `max_latency_ms` = MAX_LATENCY_MS (default 250) and the rest default.
. scripts/bench-common.sh 13395

start_kafka

config() { # name prefix lake max_latency_ms [batch limits]
  cat > "$dir/$1.toml" <<TOML
[source]
url = "mysql://root@127.0.0.1:$port"
server_id = 9400
snapshot = "never"
checkpoint = "state-$1"
include = ["binlake_bench.*"]
heartbeat_secs = 1
[transport]
kind = "kafka"
bootstrap_servers = "$bootstrap"
topic_prefix = "$2"
tombstones_on_delete = false
$kafka_extra
[lake]
url = "$3"
${5-max_rows = 100000}
max_latency_ms = $4
optimize_every_commits = 0
vacuum_every_commits = 0
TOML
}

timed() { # label command...
  local start end label=$1
  shift
  start=$(date +%s.%N)
  /usr/bin/time -f "%M" -o "$dir/rss" "$@" 2> "$dir/last.log" || { cat "$dir/last.log"; exit 1; }
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" -v n=1300000 -v rss="$(cat "$dir/rss")" -v l="$label" \
    'BEGIN{printf "   %s: %.2f s = %d row changes/s, peak RSS %.0f MB\n", l, e-s, n/(e-s), rss/1024}'
}

echo "== 1. throughput: 1.3M row changes"
scripts/mariadb.sh sql "$dir/db" < sql/workload/bench_replay.sql
config a "benchA$$" "$dir/lakeA" 1000
timed "source -> Kafka (acknowledged)" "$bin" source --config "$dir/a.toml" --exit-when-caught-up
config b "benchB$$" "$dir/lakeB" 1000
if [ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
  timed "Kafka -> lake (sink alone)" "$bin" sink --config "$dir/a.toml" --exit-when-caught-up
  timed "source -> Kafka -> lake (run, both at once)" "$bin" run --config "$dir/b.toml" --exit-when-caught-up
  config d "benchA$$" "$dir/lakeD" 1000 ""
  # The same topics, read again by a group of its own.
  sed -i "s/^topic_prefix = .*/&\ngroup_id = \"benchD$$\"/" "$dir/d.toml"
  timed "Kafka -> lake (sink alone, default batch limits)" "$bin" sink --config "$dir/d.toml" --exit-when-caught-up
else
  echo "   (the mock cluster keeps 5 MB a partition: Kafka -> lake of 1.3M changes only on a real broker, KAFKA_BOOTSTRAP_SERVERS)"
  config e "benchE$$" "$dir/lakeE" 1000 ""
  sed -i 's/^kind = "kafka"/kind = "embedded"/; /^bootstrap_servers/d; /^topic_prefix/d; /^tombstones_on_delete/d; /^\[transport.librdkafka\]/d; /^"/d' "$dir/e.toml"
  timed "source -> lake in-process (run, embedded, default batch limits)" "$bin" run --config "$dir/e.toml" --exit-when-caught-up
  # Part 2 starts from the binlog's end as config b's source left it.
  "$bin" source --config "$dir/b.toml" --exit-when-caught-up 2>/dev/null
fi

create_steady_writer
# `binlake run` through Kafka with the `[lake]` defaults but for `lines`, from the binlog's
# current end, while the writer commits for 30 s.
freshness() { # name label [lake lines]
  config "$1" "bench$1$$" "$dir/lake$1" 1000 ""
  sed -i '/^max_latency_ms/d; /^optimize_every_commits/d; /^vacuum_every_commits/d' "$dir/$1.toml"
  [ -z "${3:-}" ] || printf '%s\n' "$3" >> "$dir/$1.toml"
  echo "== 2. freshness at 5,000 row changes/s for 30 s, $2"
  # Start from the current end of the binlog: only the steady writer's rows flow.
  "$bin" source --config "$dir/b.toml" --exit-when-caught-up 2>/dev/null
  rm -rf "$dir/state-$1"
  cp -r "$dir/state-b" "$dir/state-$1"
  "$bin" run --config "$dir/$1.toml" 2> "$dir/run-$1.log" &
  local run_pid=$!
  pids+=("$run_pid")
  scripts/mariadb.sh sql "$dir/db" -e "INSERT INTO binlake_bench.lat (created_ms) VALUES (ROUND(UNIX_TIMESTAMP(NOW(3)) * 1000))"
  sleep 5
  local start end writer_pid
  start=$(date +%s.%N)
  scripts/mariadb.sh sql "$dir/db" -e "USE binlake_bench; CALL steady(3000)" &
  writer_pid=$!
  # Past the first commits, so the warm-up row's age is not sampled.
  sleep 3
  "$bin" bench freshness --config "$dir/$1.toml" --table binlake_bench.lat --column created_ms --duration 25 > "$dir/fresh-$1.out"
  wait "$writer_pid"
  end=$(date +%s.%N)
  kill -TERM "$run_pid"
  wait "$run_pid" || true
  echo "   writer: 150,000 rows in $(awk "BEGIN{printf \"%.1f\", $end-$start}") s ($(awk "BEGIN{printf \"%d\", 150000/($end-$start)}") rows/s)"
  sed 's/^/   /' "$dir/fresh-$1.out"
}
freshness c "binlake's defaults (max_latency_ms = 1000, busy_latency_ms = 250)"
freshness o "busy batches off (busy_latency_ms = 1000)" "busy_latency_ms = 1000"
freshness f "max_latency_ms = ${MAX_LATENCY_MS:-250}" "max_latency_ms = ${MAX_LATENCY_MS:-250}"
