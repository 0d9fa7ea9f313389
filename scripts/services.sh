#!/usr/bin/env bash
# The docker-compose stack without Docker, for connectors/quickstart.toml and trying binlake on
# a laptop: a private MariaDB on 127.0.0.1:3306 (ROW binlog, FULL row image and metadata) with
# sql/online_store.sql loaded, and Azurite on 127.0.0.1:10000. Kafka only when one is installed
# (kafka-server-start.sh on PATH), in KRaft mode on 127.0.0.1:9092; otherwise use
# `kind = "embedded"` or `binlake bench mock-kafka`. State lives in .services/.
#
#   scripts/services.sh up      # start (installs MariaDB from Debian and Azurite from npm if missing)
#   scripts/services.sh down    # stop everything it started
set -euo pipefail
cd "$(dirname "$0")/.."
state=.services
mkdir -p "$state"
cache=${BINLAKE_CACHE:-$HOME/.cache/binlake}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "services.sh: nothing listens on 127.0.0.1:$1" >&2
  return 1
}

up() {
  if ! command -v mariadbd >/dev/null 2>&1; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server mariadb-client >/dev/null
  fi
  if [ ! -S "$state/mariadb/mariadb.sock" ]; then
    scripts/mariadb.sh start "$state/mariadb" 3306
    if ! scripts/mariadb.sh sql "$state/mariadb" -e "USE online_store" 2>/dev/null; then
      scripts/mariadb.sh sql "$state/mariadb" < sql/online_store.sql
    fi
  fi
  echo "MariaDB  mysql://root@127.0.0.1:3306 (online_store loaded)"

  if [ ! -x "$cache/azurite/node_modules/.bin/azurite-blob" ]; then
    command -v npm >/dev/null 2>&1 || {
      as_root apt-get update -qq
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
    }
    npm install --prefix "$cache/azurite" --no-audit --no-fund --silent azurite@3.35.0
  fi
  if [ ! -f "$state/azurite.pid" ] || ! kill -0 "$(cat "$state/azurite.pid")" 2>/dev/null; then
    mkdir -p "$state/azurite"
    "$cache/azurite/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort 10000 \
      --location "$state/azurite" --skipApiVersionCheck --loose --disableTelemetry \
      >"$state/azurite.log" 2>&1 &
    echo $! > "$state/azurite.pid"
    wait_port 10000
  fi
  echo "Azurite  http://127.0.0.1:10000 (lake.storage use_emulator = \"true\")"

  if command -v kafka-server-start.sh >/dev/null 2>&1; then
    if [ ! -f "$state/kafka.pid" ] || ! kill -0 "$(cat "$state/kafka.pid")" 2>/dev/null; then
      mkdir -p "$state/kafka"
      cat > "$state/kafka/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:9093
listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093
controller.listener.names=CONTROLLER
log.dirs=$PWD/$state/kafka/data
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
PROPS
      if [ ! -f "$state/kafka/data/meta.properties" ]; then
        kafka-storage.sh format -t "$(kafka-storage.sh random-uuid)" -c "$state/kafka/server.properties" >/dev/null
      fi
      kafka-server-start.sh "$state/kafka/server.properties" >"$state/kafka.log" 2>&1 &
      echo $! > "$state/kafka.pid"
      wait_port 9092
    fi
    echo "Kafka    127.0.0.1:9092 (KRaft)"
  else
    echo "Kafka    not installed: use kind = \"embedded\", or binlake bench mock-kafka"
  fi
}

down() {
  for svc in kafka azurite; do
    if [ -f "$state/$svc.pid" ]; then
      kill "$(cat "$state/$svc.pid")" 2>/dev/null || true
      rm -f "$state/$svc.pid"
    fi
  done
  if [ -d "$state/mariadb" ]; then
    scripts/mariadb.sh stop "$state/mariadb" || true
  fi
  echo "stopped"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: scripts/services.sh up|down" >&2; exit 2 ;;
esac
