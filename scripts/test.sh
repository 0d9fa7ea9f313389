#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need (MariaDB from Debian's
# packages), then runs cargo fmt --check, clippy and every test. The tests start and stop their
# own private servers on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build outside the clone so repeated runs (and CI on this machine) reuse compiled dependencies.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/binlake/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v mariadbd >/dev/null 2>&1; then
  echo "== installing MariaDB (Debian's mariadb-server, mariadb-client)"
  as_root apt-get update -qq
  # The package's own service start fails without systemd; the tests start private servers.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server mariadb-client >/dev/null
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets -- -D warnings
echo "== cargo test"
cargo test --all-targets
