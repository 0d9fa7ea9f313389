#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need (MariaDB, Chromium and
# openssl from Debian's packages, Azurite from npm, Python's deltalake from PyPI), then runs cargo fmt
# --check, clippy and every test. The tests start and stop their
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

# openssl makes the certificates of the TLS tests (tests/it/tls.rs).
if ! command -v openssl >/dev/null 2>&1; then
  echo "== installing openssl (Debian's openssl)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
fi

CACHE=${BINLAKE_CACHE:-$HOME/.cache/binlake}
mkdir -p "$CACHE"

# Python's deltalake reads the tables binlake writes (tests/it/lake.rs).
if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "== installing Python (Debian's python3, python3-venv)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
fi
# The engines tests/it/readers.rs reads the lake with (docs/readers.md), pinned: what each
# reads is part of the docs.
# kubernetes-validate (with the API schemas bundled, so offline) checks the Kubernetes example
# (tests/it/kubernetes.rs).
if ! "$CACHE/venv/bin/python" -c 'import deltalake, pyarrow, duckdb, duckdb_extension_delta, polars, pandas, pytz, kubernetes_validate' >/dev/null 2>&1; then
  echo "== installing Python's deltalake, pyarrow, DuckDB with its delta extension, Polars, pandas and kubernetes-validate (PyPI) into $CACHE/venv"
  [ -x "$CACHE/venv/bin/pip" ] || python3 -m venv "$CACHE/venv"
  "$CACHE/venv/bin/pip" install -q --disable-pip-version-check 'deltalake==1.6.6' pyarrow \
    'duckdb==1.5.5' 'duckdb-extension-delta==1.5.5' 'polars==2.1.0' 'pandas==3.1.1' pytz \
    'kubernetes-validate==1.37.0'
fi
export BINLAKE_PYTHON="$CACHE/venv/bin/python"

# Headless Chromium renders the status page (tests/it/status_page.rs).
if [ ! -x /usr/bin/chromium ]; then
  echo "== installing Chromium (Debian's chromium)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

# Azurite (npm) stands in for Azure Blob Storage; one for the suite, a container per test.
if [ ! -x "$CACHE/azurite/node_modules/.bin/azurite-blob" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "== installing Node.js (Debian's nodejs, npm)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  echo "== installing Azurite 3.35.0 (npm) into $CACHE/azurite"
  npm install --prefix "$CACHE/azurite" --no-audit --no-fund --silent azurite@3.35.0
fi
azurite_data=$(mktemp -d)
azurite_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$CACHE/azurite/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$azurite_port" \
  --location "$azurite_data" --skipApiVersionCheck --loose --disableTelemetry >"$azurite_data/log" 2>&1 &
azurite_pid=$!
trap 'kill "$azurite_pid" 2>/dev/null; wait "$azurite_pid" 2>/dev/null; rm -rf "$azurite_data"' EXIT
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$azurite_port") 2>/dev/null && break
  sleep 0.1
done
export AZURITE_BLOB_STORAGE_URL="http://127.0.0.1:$azurite_port"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets -- -D warnings
echo "== cargo test"
cargo test --all-targets
