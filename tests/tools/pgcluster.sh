#!/usr/bin/env bash
# A local PostgreSQL 15 cluster for the demo, the tests and the benchmark, with pg_cron loaded.
#   pgcluster.sh start NAME PORT CRON_DB   start (initdb first if needed); idempotent
#   pgcluster.sh stop NAME                 stop if running
#   pgcluster.sh restart NAME              restart (pg_cron's scheduler attaches to its database at start)
#   pgcluster.sh env NAME PORT             print PGHOST/PGPORT/PGUSER exports for psql
# Data lives in <repo>/.pgdata/NAME (git-ignored). Run as root, the server runs as the postgres OS user.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
bindir=/usr/lib/postgresql/15/bin
cmd=${1:?usage}; name=${2:?usage}
dir="$repo/.pgdata/$name"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "$cmd" in
  start)
    port=${3:?port}; crondb=${4:?cron database}
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$repo/.pgdata" "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_pg "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log"
      echo "include 'segplan.conf'" | as_pg tee -a "$dir/data/postgresql.conf" >/dev/null
    fi
    { cat "$repo/pg_test_config/postgresql.conf"
      echo "port = $port"
      echo "listen_addresses = ''"
      echo "unix_socket_directories = '$dir'"
      echo "cron.database_name = '$crondb'"; } | as_pg tee "$dir/data/segplan.conf" >/dev/null
    if ! as_pg "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      # no Rust backtraces in error details (a developer's RUST_BACKTRACE would leak into DETAIL)
      as_pg env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null
    fi
    ;;
  stop)
    if [ -f "$dir/data/PG_VERSION" ] && as_pg "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    fi
    ;;
  restart)
    as_pg env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -m fast -w -t 60 restart >/dev/null
    ;;
  env)
    port=${3:?port}
    echo "export PGHOST='$dir' PGPORT=$port PGUSER=postgres"
    ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
