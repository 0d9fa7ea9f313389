#!/usr/bin/env bash
# Writes tests/fixtures/binlogs/mariadb/mariadb-all-types.000001: starts a private MariaDB
# (scripts/mariadb.sh), runs sql/workload/all_types.sql and saves the binlog that holds it.
# The live test (tests/it/mariadb_replay.rs) does the same and compares with SELECT; the saved
# file lets the fixture tests check the same values without a server.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
port=${PORT:-13399}
trap 'scripts/mariadb.sh stop "$dir"; rm -rf "$dir"' EXIT
scripts/mariadb.sh start "$dir" "$port"
scripts/mariadb.sh sql "$dir" < sql/workload/all_types.sql
scripts/mariadb.sh sql "$dir" -e "FLUSH BINARY LOGS"
version=$(scripts/mariadb.sh sql "$dir" -N -e "SELECT VERSION()")
out=tests/fixtures/binlogs/mariadb/mariadb-all-types.000001
cp "$dir/data/mariadb-bin.000001" "$out"
echo "wrote $out ($(stat -c %s "$out") bytes) from MariaDB $version"
