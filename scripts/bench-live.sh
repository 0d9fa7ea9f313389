#!/usr/bin/env bash
# Live-capture benchmarks against a private MariaDB (release build), printed in one run:
#  1. snapshot rows/s of a 1M-row table (snapshot = "only"), with peak RSS, with the server's
#     snapshot positions, with watermarks (the lock-free algorithm MySQL uses) and read-only (the
#     one tables added later and `binlake snapshot` take where watermarks are not configured),
#     and their ratios to the first;
#  2. the same table added to `include` of a running capture (snapshotted by itself while the
#     stream goes on), rows/s and its ratio to the first;
#  3. streaming row changes/s of sql/workload/bench_replay.sql (1M inserts in one transaction,
#     200k updates, 100k deletes) read live from the server, with peak RSS: the 1M-row
#     transaction is in this stream. It runs first, so the binlog holds only this workload.
# Output goes to /dev/null through the ndjson transport; the JSON is fully produced.
. scripts/bench-common.sh 13397

config() { # snapshot mode, include[, snapshot_positions]
  cat > "$dir/$1${3:+-$3}.toml" <<TOML
[source]
url = "mysql://root@127.0.0.1:$port"
server_id = 9100
snapshot = "$1"
checkpoint = "state-$1"
include = ["$2"]
snapshot_positions = "${3:-auto}"
[transport]
kind = "ndjson"
path = "/dev/null"
TOML
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "== writing the workload"
scripts/mariadb.sh sql "$dir/db" < sql/workload/bench_replay.sql
echo "== streaming the whole workload from the oldest binlog (snapshot = \"never\"), 5 runs"
config never "binlake_bench.*"
for run in 1 2 3 4 5; do
  rm -rf "$dir/state-never"
  /usr/bin/time -f "%e %M" "$bin" source --config "$dir/never.toml" --exit-when-caught-up 2>"$dir/stream.log" || { cat "$dir/stream.log"; exit 1; }
  tail -1 "$dir/stream.log"
done > "$dir/stream.times"
changes=$(grep -o 'changes=[0-9]*' "$dir/stream.log" | tail -1 | cut -d= -f2)
secs=$(awk '{print $1}' "$dir/stream.times" | median)
rss=$(awk '{print $2}' "$dir/stream.times" | sort -n | tail -1)
echo "   runs (s, peak KB): $(tr '\n' ' ' < "$dir/stream.times")"
echo "   streaming: $changes row changes, median $secs s = $(awk "BEGIN{printf \"%d\", $changes/$secs}") row changes/s, peak RSS $rss KB"

echo "== writing a 1M-row table for the snapshot"
scripts/mariadb.sh sql "$dir/db" -e "CREATE DATABASE snap; USE snap; CREATE TABLE rows7 LIKE binlake_bench.rows7;
  INSERT INTO rows7 SELECT seq, seq * 7 % 1000, CONCAT('title ', seq, ' ', REPEAT('x', 90)), CONCAT('tag-', seq % 97),
    (seq % 100000) / 100, TIMESTAMP('2024-01-01') + INTERVAL seq SECOND, CONCAT('{\"n\": ', seq, '}') FROM seq_1_to_1000000;
  SELECT COUNT(*) AS snapshot_rows FROM rows7"

snapshot_runs() { # config file, label
  for run in 1 2 3; do
    rm -rf "$dir/state-only"
    /usr/bin/time -f "%e %M" "$bin" source --config "$1" 2>"$dir/snap.log" || { cat "$dir/snap.log"; exit 1; }
    tail -1 "$dir/snap.log"
  done > "$dir/snap.times"
  rows=$(grep -o 'rows=[0-9]*' "$dir/snap.log" | tail -1 | cut -d= -f2)
  secs=$(awk '{print $1}' "$dir/snap.times" | median)
  rss=$(awk '{print $2}' "$dir/snap.times" | sort -n | tail -1)
  echo "   runs (s, peak KB): $(tr '\n' ' ' < "$dir/snap.times")"
  echo "   snapshot ($2): $rows rows, median $secs s = $(awk "BEGIN{printf \"%d\", $rows/$secs}") rows/s, peak RSS $rss KB"
  echo "$rows $secs" > "$dir/snap-$2.result"
}

echo "== snapshot (snapshot = \"only\") of snap.rows7 with the server's positions, 3 runs"
config only "snap.*" server
snapshot_runs "$dir/only-server.toml" server
echo "== the same with watermarks (snapshot_positions = \"watermark\"), 3 runs"
config only "snap.*" watermark
snapshot_runs "$dir/only-watermark.toml" watermark
read -r _ server_secs < "$dir/snap-server.result"
read -r _ watermark_secs < "$dir/snap-watermark.result"
echo "   watermark / server snapshot rate: $(awk "BEGIN{printf \"%.2f\", $server_secs/$watermark_secs}")"
echo "== the same read-only (snapshot_positions = \"read_only\"), 3 runs"
config only "snap.*" read_only
snapshot_runs "$dir/only-read_only.toml" read_only
read -r _ read_only_secs < "$dir/snap-read_only.result"
echo "   read-only / server snapshot rate: $(awk "BEGIN{printf \"%.2f\", $server_secs/$read_only_secs}")"
echo "== the same table added to include later (snapshotted by itself beside the stream), 3 runs"
# Timed from the log, from "tables added to include" to "snapshot done": the run goes on
# streaming after it, until --exit-when-caught-up sees the stream idle.
stamp() { date -d "$(grep -m1 "$1" "$dir/added.log" | cut -c1-27)" +%s.%N; }
for run in 1 2 3; do
  rm -rf "$dir/state-initial"
  config initial "snap.not_yet"
  "$bin" source --config "$dir/initial.toml" --exit-when-caught-up 2>"$dir/added.log" || { cat "$dir/added.log"; exit 1; }
  config initial "snap.*"
  /usr/bin/time -f "%e %M" "$bin" source --config "$dir/initial.toml" --exit-when-caught-up 2>"$dir/added.log" || { cat "$dir/added.log"; exit 1; }
  grep -q "tables added to include" "$dir/added.log" || { echo "the table was not snapshotted as added"; cat "$dir/added.log"; exit 1; }
  echo "$(awk "BEGIN{printf \"%.2f\", $(stamp "snapshot done") - $(stamp "tables added to include")}") $(tail -1 "$dir/added.log" | awk '{print $2}')"
done > "$dir/added.times"
rows=$(grep -o 'rows=[0-9]*' "$dir/added.log" | tail -1 | cut -d= -f2)
secs=$(awk '{print $1}' "$dir/added.times" | median)
rss=$(awk '{print $2}' "$dir/added.times" | sort -n | tail -1)
echo "   runs (snapshot s, peak KB): $(tr '\n' ' ' < "$dir/added.times")"
echo "   added table: $rows rows, median $secs s = $(awk "BEGIN{printf \"%d\", $rows/$secs}") rows/s, peak RSS $rss KB"
echo "   added / initial (server) snapshot rate: $(awk "BEGIN{printf \"%.2f\", $server_secs/$secs}")"
