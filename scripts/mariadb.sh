#!/usr/bin/env bash
# A private MariaDB for tests and fixtures: its own datadir, port on 127.0.0.1, ROW binlog with
# FULL row image and FULL row metadata. Nothing else on the machine is touched.
#
#   scripts/mariadb.sh start DIR PORT [extra mariadbd options...]   # initialises DIR if new
#   scripts/mariadb.sh stop DIR
#   scripts/mariadb.sh sql DIR [client options...]                   # a client on that server
set -euo pipefail

cmd=${1:?usage: mariadb.sh start|stop|sql DIR [PORT]}
dir=${2:?usage: mariadb.sh start|stop|sql DIR [PORT]}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
sock="$dir/mariadb.sock"

need() {
  command -v "$1" >/dev/null 2>&1 || {
    echo "mariadb.sh: $1 not found; install it with: apt-get install -y mariadb-server mariadb-client" >&2
    exit 1
  }
}

case "$cmd" in
  start)
    port=${3:?usage: mariadb.sh start DIR PORT}
    shift 3
    need mariadbd
    need mariadb-install-db
    # A private tmpdir: instances that share /tmp collide on temporary table names.
    mkdir -p "$dir/tmp"
    if [ ! -d "$dir/data/mysql" ]; then
      mariadb-install-db --no-defaults --datadir="$dir/data" --user=root \
        --auth-root-authentication-method=normal --skip-test-db --innodb-use-native-aio=0 --tmpdir="$dir/tmp" >"$dir/install.log" 2>&1 || {
        echo "mariadb.sh: mariadb-install-db failed:" >&2
        grep -v "^$" "$dir/install.log" | head -15 >&2
        exit 1
      }
    fi
    mariadbd --no-defaults --datadir="$dir/data" --user=root --bind-address=127.0.0.1 \
      --port="$port" --socket="$sock" --pid-file="$dir/mariadb.pid" --server-id=1 --tmpdir="$dir/tmp" \
      --log-bin="$dir/data/mariadb-bin" --binlog-format=ROW --binlog-row-image=FULL \
      --binlog-row-metadata=FULL --innodb-buffer-pool-size=256M --innodb-use-native-aio=0 --skip-name-resolve \
      --log-error="$dir/error.log" "$@" &
    for _ in $(seq 1 300); do
      if mariadb --no-defaults -uroot --socket="$sock" -e 'SELECT 1' >/dev/null 2>&1; then
        exit 0
      fi
      sleep 0.1
    done
    echo "mariadb.sh: the server did not become ready in 30 s; see $dir/error.log" >&2
    exit 1
    ;;
  stop)
    if [ -f "$dir/mariadb.pid" ]; then
      pid=$(cat "$dir/mariadb.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || exit 0
        sleep 0.1
      done
      kill -9 "$pid" 2>/dev/null || true
    fi
    ;;
  sql)
    shift 2
    exec mariadb --no-defaults --default-character-set=utf8mb4 -uroot --socket="$sock" "$@"
    ;;
  *)
    echo "mariadb.sh: unknown command $cmd (start, stop, sql)" >&2
    exit 2
    ;;
esac
