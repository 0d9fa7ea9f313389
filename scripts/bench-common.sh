# Sourced by the bench-*.sh scripts (`. scripts/bench-common.sh DEFAULT_PORT`): a release
# build in $bin, a scratch folder $dir, a private MariaDB on $PORT (or DEFAULT_PORT) under
# $dir/db; on exit every pid in `pids` is killed, MariaDB stopped and $dir removed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/binlake/target}
cargo build --release --quiet
bin="$CARGO_TARGET_DIR/release/binlake"
dir=$(mktemp -d)
port=${PORT:-$1}
pids=()
bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  scripts/mariadb.sh stop "$dir/db"
  rm -rf "$dir"
}
trap bench_cleanup EXIT
scripts/mariadb.sh start "$dir/db" "$port" --max-binlog-size=1G

# Sets $bootstrap: the broker in KAFKA_BOOTSTRAP_SERVERS, or librdkafka's mock cluster in a
# process of its own.
start_kafka() {
  kafka_extra=""
  if [ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
    bootstrap=$KAFKA_BOOTSTRAP_SERVERS
  else
    "$bin" bench mock-kafka > "$dir/mock.addr" 2>/dev/null &
    pids+=($!)
    for _ in $(seq 1 100); do [ -s "$dir/mock.addr" ] && break; sleep 0.1; done
    bootstrap=$(cat "$dir/mock.addr")
    # The mock cluster has no CreateTopics: binlake lets it make topics on first use. It also
    # holds a fetch that finds no data for the whole fetch.wait.max.ms (500 ms by default)
    # without waking when data arrives, where a broker answers as soon as there is some
    # (librdkafka's rdkafka_mock_handlers.c): a short wait keeps that out of the latencies.
    kafka_extra=$'[transport.librdkafka]\n"allow.auto.create.topics" = "true"\n"fetch.wait.max.ms" = "10"'
  fi
}

# Creates binlake_bench.lat (each row stamped with its commit time in ms) unless it exists,
# and the procedure binlake_bench.steady(n): n transactions of 50 rows, 10 ms apart, about
# 5,000 rows/s.
create_steady_writer() {
  scripts/mariadb.sh sql "$dir/db" <<'SQL'
CREATE DATABASE IF NOT EXISTS binlake_bench;
USE binlake_bench;
CREATE TABLE IF NOT EXISTS lat (id INT AUTO_INCREMENT PRIMARY KEY, created_ms BIGINT NOT NULL);
DELIMITER //
CREATE PROCEDURE steady(n INT)
BEGIN
  DECLARE i INT DEFAULT 0;
  WHILE i < n DO
    START TRANSACTION;
    INSERT INTO lat (created_ms) SELECT ROUND(UNIX_TIMESTAMP(NOW(3)) * 1000) FROM seq_1_to_50;
    COMMIT;
    DO SLEEP(0.01);
    SET i = i + 1;
  END WHILE;
END //
DELIMITER ;
SQL
}
