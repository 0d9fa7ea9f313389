#!/usr/bin/env bash
# Writes tests/fixtures/binlogs/mariadb/online-store.000001, the binlog `binlake demo` replays:
# a private MariaDB (scripts/mariadb.sh) loads sql/online_store.sql, `binlake generate` runs
# the e-commerce workload for a few seconds, an ALTER TABLE adds a column mid-way, and the
# binlog that holds all of it is saved.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/binlake/target}
cargo build --quiet
bin="$CARGO_TARGET_DIR/debug/binlake"
dir=$(mktemp -d)
port=${PORT:-13398}
trap 'scripts/mariadb.sh stop "$dir/db"; rm -rf "$dir"' EXIT
scripts/mariadb.sh start "$dir/db" "$port"
scripts/mariadb.sh sql "$dir/db" < sql/online_store.sql
cat > "$dir/gen.toml" <<TOML
[source]
url = "mysql://root@127.0.0.1:$port"
server_id = 9301
checkpoint = "state"
[transport]
kind = "embedded"
TOML
"$bin" generate --config "$dir/gen.toml" --rate 800 --duration 4
scripts/mariadb.sh sql "$dir/db" -e "ALTER TABLE online_store.Customers ADD COLUMN LoyaltyTier VARCHAR(10) NULL"
"$bin" generate --config "$dir/gen.toml" --rate 800 --duration 4
scripts/mariadb.sh sql "$dir/db" -e "UPDATE online_store.Customers SET LoyaltyTier = 'gold' WHERE CustomerID <= 3"
scripts/mariadb.sh sql "$dir/db" -e "FLUSH BINARY LOGS"
version=$(scripts/mariadb.sh sql "$dir/db" -N -e "SELECT VERSION()")
out=tests/fixtures/binlogs/mariadb/online-store.000001
cp "$dir/db/data/mariadb-bin.000001" "$out"
echo "wrote $out ($(stat -c %s "$out") bytes) from MariaDB $version"
