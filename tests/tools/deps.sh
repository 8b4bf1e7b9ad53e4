#!/usr/bin/env bash
# Installs whatever is missing to build, test and demo segplan on Debian 12; quick when all is there.
set -euo pipefail
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config

pkgs=(postgresql-15 postgresql-server-dev-15 postgresql-15-cron clang libclang-dev sudo python3-pip)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Debian's postgresql package starts a cluster on port 5432; segplan uses its own clusters.

if ! cargo pgrx --version 2>/dev/null | grep -q '0\.18\.0'; then
  echo "deps: installing cargo-pgrx 0.18.0 (takes a few minutes)"
  cargo install cargo-pgrx --version 0.18.0 --locked
fi
if ! grep -qs '^pg15' "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
  cargo pgrx init --pg15="$PG_CONFIG"
fi

py_missing=()
python3 -c 'import psycopg' 2>/dev/null || py_missing+=("psycopg[binary]")
if [ "${WITH_BENCH:-0}" = 1 ]; then python3 -c 'import duckdb' 2>/dev/null || py_missing+=(duckdb); fi
if [ ${#py_missing[@]} -gt 0 ]; then
  echo "deps: pip installing ${py_missing[*]}"
  python3 -m pip install -q --disable-pip-version-check "${py_missing[@]}" 2>&1 | grep -v 'Running pip as the' || true
fi
