#!/usr/bin/env bash
# make upgrade: segplan 0.1.0 as released (tests/upgrade/segplan--0.1.0.sql, installed next to the
# current version by the Makefile) with data in it, updated with ALTER EXTENSION … UPDATE, must
# keep its data and equal a fresh install of the current version object by object
# (tests/upgrade/catalog.sql). Runs against the test cluster ($PGHOST/$PGPORT set).
set -euo pipefail
cd "$(dirname "$0")"
psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS segplan_upgraded WITH (FORCE)" -c "DROP DATABASE IF EXISTS segplan_fresh WITH (FORCE)" \
  -c "CREATE DATABASE segplan_upgraded" -c "CREATE DATABASE segplan_fresh"
# the demo tables (not part of the extension) to register
psql -X -q -v ON_ERROR_STOP=1 -d segplan_upgraded -f ../../sql/datagen.sql >/dev/null
run() { psql -X -a -q -v ON_ERROR_STOP=1 -d "$1" -f "$2" 2>&1; }
{ run segplan_upgraded before.sql
  psql -X -a -q -v ON_ERROR_STOP=1 -d segplan_upgraded -c "ALTER EXTENSION segplan UPDATE" 2>&1
  run segplan_upgraded after.sql; } > results.out
diff -u expected.out results.out || { echo "upgrade: the updated install does not behave as expected (above)"; exit 1; }
psql -X -q -d segplan_fresh -c "SET client_min_messages = error" -c "CREATE EXTENSION segplan"
psql -X -At -v ON_ERROR_STOP=1 -d segplan_fresh -f catalog.sql > fresh.txt
psql -X -At -v ON_ERROR_STOP=1 -d segplan_upgraded -f catalog.sql > upgraded.txt
diff -u fresh.txt upgraded.txt || { echo "upgrade: the updated install differs from a fresh one (- fresh, + updated)"; exit 1; }
echo "upgrade: 0.1.0 updated to $(psql -X -At -d segplan_upgraded -c "SELECT extversion FROM pg_extension WHERE extname = 'segplan'"): data kept, $(wc -l < fresh.txt) objects as a fresh install"
