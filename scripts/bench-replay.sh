#!/usr/bin/env bash
# The replay benchmark: 1M inserts, 200k updates, 100k deletes of a 7-column row, written by a
# private MariaDB (sql/workload/bench_replay.sql), then decoded by binlake (release build) and,
# in the same run, by MariaDB's own mariadb-binlog for comparison.
#   scripts/bench-replay.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/binlake/target}
cache=${BINLAKE_BENCH_DIR:-$HOME/.cache/binlake/bench}
file="$cache/bench-1.3m.000001"
mkdir -p "$cache"
if [ ! -f "$file" ]; then
  dir=$(mktemp -d)
  trap 'scripts/mariadb.sh stop "$dir"; rm -rf "$dir"' EXIT
  scripts/mariadb.sh start "$dir" "${PORT:-13398}" --max-binlog-size=1G
  echo "== writing the workload (about 10 s)"
  scripts/mariadb.sh sql "$dir" < sql/workload/bench_replay.sql
  scripts/mariadb.sh sql "$dir" -e "FLUSH BINARY LOGS"
  cp "$dir/data/mariadb-bin.000001" "$file"
fi
cargo build --release --quiet
echo "== binlake bench replay ($runs runs)"
"$CARGO_TARGET_DIR/release/binlake" bench replay --runs "$runs" "$file"
if command -v mariadb-binlog >/dev/null; then
  echo "== mariadb-binlog -v --base64-output=DECODE-ROWS > /dev/null ($runs runs)"
  for _ in $(seq 1 "$runs"); do
    /usr/bin/time -f "  %e s, peak RSS %M KB" mariadb-binlog -v --base64-output=DECODE-ROWS "$file" >/dev/null
  done
fi
