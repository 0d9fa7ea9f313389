#!/usr/bin/env bash
# One `binlake sink` against two in one consumer group, on a 2-table workload: release build,
# a private MariaDB, librdkafka's mock cluster in its own process (or the broker in
# KAFKA_BOOTSTRAP_SERVERS). Two tables of 60,000 inserts and 20,000 updates each (160,000
# changes, four partitions a topic) are published once; then each case reads them from the
# start into a lake of its own with `--exit-when-caught-up`, and prints its wall time (until
# every member has exited), the records each member applied, its peak RSS, the batches it
# applied again because the other member committed to the table first, and the bronze appends
# it put on top of the other member's instead:
#  1. one sink;
#  2. two sinks in one group, started together, three times (a new group and lake each).
# The ratios are case 1's time over case 2's, until every member exited and from the group's
# first assignment to the last member's end. The first includes the group's forming, which on
# the mock cluster takes 1 to 9 s whatever the number of members: a group's first rebalance
# waits 3 s for members (as a broker's group.initial.rebalance.delay.ms), and a rebalance of
# a group already running waits the session timeout less 1 s (binlake's session timeout is
# 10 s), where a broker ends it once every member has rejoined (librdkafka's
# rdkafka_mock_cgrp.c).
. scripts/bench-common.sh 13396

start_kafka
prefix="sinks$$"

scripts/mariadb.sh sql "$dir/db" <<'SQL'
CREATE DATABASE binlake_bench;
USE binlake_bench;
CREATE TABLE a (id INT PRIMARY KEY, v INT NOT NULL, s VARCHAR(64) NOT NULL);
CREATE TABLE b LIKE a;
INSERT INTO a SELECT seq, seq, CONCAT('row-', seq) FROM seq_1_to_60000;
INSERT INTO b SELECT seq, seq, CONCAT('row-', seq) FROM seq_1_to_60000;
UPDATE a SET v = v + 1 WHERE id % 3 = 0;
UPDATE b SET v = v + 1 WHERE id % 3 = 0;
SQL

config() { # name lake group
  cat > "$dir/$1.toml" <<TOML
[source]
url = "mysql://root@127.0.0.1:$port"
server_id = 9500
snapshot = "never"
checkpoint = "state"
include = ["binlake_bench.*"]
[transport]
kind = "kafka"
bootstrap_servers = "$bootstrap"
topic_prefix = "$prefix"
group_id = "$3"
partitions = 4
tombstones_on_delete = false
$kafka_extra
[lake]
url = "$2"
TOML
}

config source "$dir/unused" "unused"
# From the binlog's first file, so the tables' creation and every row is published.
"$bin" source --config "$dir/source.toml" --exit-when-caught-up 2> "$dir/source.log" \
  || { cat "$dir/source.log"; exit 1; }
echo "== 160,000 changes of 2 tables published to $bootstrap"

# Starts `binlake sink` once per member, all at once, and waits for all of them.
sinks() { # label config members
  local label=$1 cfg=$2 members=$3 start end i
  local -a member_pids=()
  start=$(date +%s.%N)
  for i in $(seq 1 "$members"); do
    BINLAKE_LOG=info,binlake::lake::rebase=debug /usr/bin/time -f "%M" -o "$dir/rss.$i" \
      "$bin" sink --config "$cfg" --exit-when-caught-up 2> "$dir/sink.$i.log" &
    member_pids+=($!)
    pids+=($!)
  done
  for i in $(seq 1 "$members"); do
    wait "${member_pids[$((i - 1))]}" || { cat "$dir/sink.$i.log"; exit 1; }
  done
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" 'BEGIN{print e-s}' > "$dir/$label.secs"
  # From the group's first assignment to the last member's end: the lake's share of the time,
  # without the group's forming.
  local first last
  first=$(grep -h 'the consumer group assigned this sink' "$dir"/sink.*.log | cut -c1-27 | sort | head -1)
  last=$(grep -h 'sink stopped' "$dir"/sink.*.log | cut -c1-27 | sort | tail -1)
  echo "$(date -d "$last" +%s.%N) - $(date -d "$first" +%s.%N)" | awk '{print $1 - $3}' > "$dir/$label.applying"
  printf '   %s: %.2f s until every member exited, %.2f s of it from the first assignment\n' \
    "$label" "$(cat "$dir/$label.secs")" "$(cat "$dir/$label.applying")"
  for i in $(seq 1 "$members"); do
    records=$(grep -o 'records=[0-9]*' "$dir/sink.$i.log" | tail -1 | cut -d= -f2)
    refused=$(grep -c 'another writer committed to the table first' "$dir/sink.$i.log" || true)
    on_top=$(grep -c 'other partitions during the append' "$dir/sink.$i.log" || true)
    printf '     member %d: %s records, peak RSS %d MB; after the other member committed first: %s batches of a table applied again, %s bronze appends put on top\n' \
      "$i" "${records:-?}" "$(( $(cat "$dir/rss.$i") / 1024 ))" "$refused" "$on_top"
  done
}

echo "== 1. one sink"
config one "$dir/lake1" "one$$"
sinks one "$dir/one.toml" 1
for run in 1 2 3; do
  echo "== 2. two sinks in one group, run $run"
  config "two$run" "$dir/lake2-$run" "two$run$$"
  sinks "two$run" "$dir/two$run.toml" 2
  awk -v a="$(cat "$dir/one.secs")" -v b="$(cat "$dir/two$run.secs")" \
    -v c="$(cat "$dir/one.applying")" -v d="$(cat "$dir/two$run.applying")" \
    'BEGIN{printf "   ratio one sink / two sinks: %.2f until exit, %.2f from the first assignment\n", a/b, c/d}'
done
