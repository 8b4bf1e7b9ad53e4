#!/usr/bin/env bash
# Generates the demo dataset into database $1 with $2 contacts and seed $3, ending today:
# dimensions and contacts first, then message events and orders in two sessions at once (one per
# core), then indexes and statistics. Same rows as demo.generate() in one session.
set -euo pipefail
db=$1; n=$2; seed=$3
repo=$(cd "$(dirname "$0")/../.." && pwd)
psql=(psql -X -q -v ON_ERROR_STOP=1 -d "$db")
"${psql[@]}" -f "$repo/sql/datagen.sql"
end=$("${psql[@]}" -tAc "SELECT date_trunc('day', now())")
phase() { "${psql[@]}" -c "SET client_min_messages = warning" -c "SELECT demo.$1($n, $seed, '$end')" >/dev/null; }
phase generate_base
phase generate_messages & messages=$!
phase generate_orders & orders=$!
wait $messages
wait $orders
"${psql[@]}" -tAc "SET client_min_messages = warning; SELECT demo.generate_finish()"
