#!/usr/bin/env bash
# PostgreSQL appends beside pgbench, interleaved: pgbench, the store bench, pgbench again, for
# 1 and for 100 events per append, one client, same server. pgbench's rate varies from run to
# run, so the store's rate is compared with the mean of the two pgbench runs around it. For
# 100 events pgbench runs two scripts: rows made in the server, and rows sent by the client.
#
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/eventsource_test benches/pgbench/run.sh [seconds]
#
# Needs pgbench and psql (Debian: postgresql-client). Prints events per second of each run and
# the store's rate as a fraction of pgbench's.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${DATABASE_URL:?set DATABASE_URL to the server to measure}"
seconds="${1:-10}"
dir=benches/pgbench

# pgbench's table: the events table of the store's own schema (same columns, key and unique
# constraint), in a schema of its own, and a sequence for the versions each append takes.
pgbench_table() {
    {
        echo "DROP SCHEMA IF EXISTS pgbench_events CASCADE; CREATE SCHEMA pgbench_events;"
        sed -n '/^CREATE TABLE IF NOT EXISTS __schema__.events (/,/^);/p' \
            eventsource-runtime/src/postgres/schema/full.sql | sed 's/__schema__/pgbench_events/g'
        echo "CREATE SEQUENCE pgbench_events.versions;"
    } | psql -q -v ON_ERROR_STOP=1 "$DATABASE_URL" >/dev/null 2>&1
}

pgbench_rate() { # script, events per transaction[, protocol] -> events/s
    pgbench_table
    local tps
    tps=$(pgbench -n -c 1 -T "$seconds" -M "${3:-simple}" -f "$dir/$1" "$DATABASE_URL" 2>/dev/null \
        | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
    python3 -c "print(round($tps * $2))"
}

store_rate() { # criterion group -> events/s (the middle estimate)
    cargo bench -q --bench store -- "$1/postgres" --measurement-time "$seconds" 2>/dev/null \
        | python3 -c '
import re, sys
units = {"elem/s": 1, "Kelem/s": 1e3, "Melem/s": 1e6}
for line in sys.stdin:
    m = re.search(r"thrpt:\s*\[\S+ \S+ (\S+) (\S+) ", line)
    if m:
        print(round(float(m.group(1)) * units[m.group(2)]))
        break'
}

compare() { # events per append, what pgbench ran, its rate before, the store's, its rate after
    python3 - "$@" <<'PY'
import sys
per, what, before, store, after = sys.argv[1], sys.argv[2], *map(float, sys.argv[3:])
mean = (before + after) / 2
print(f"{per:>3} event(s)/append, pgbench {what}: {before:,.0f} and {after:,.0f} events/s "
      f"(mean {mean:,.0f}); eventsource {store:,.0f} events/s = {store / mean:.2f}x pgbench "
      f"({mean / store:.2f}x slower)")
PY
}

cargo bench -q --bench store --no-run 2>/dev/null

before=$(pgbench_rate append_1.sql 1)
prepared_before=$(pgbench_rate append_1.sql 1 prepared)
store=$(store_rate append_1_event)
prepared_after=$(pgbench_rate append_1.sql 1 prepared)
after=$(pgbench_rate append_1.sql 1)
compare 1 "the row sent by the client" "$before" "$store" "$after"
compare 1 "the row sent, prepared" "$prepared_before" "$store" "$prepared_after"

# For 100 events, two pgbench scripts: append_100.sql makes the rows in the server
# (generate_series), append_100_sent.sql sends them in the statement, as a client sends its
# events (and as the store does, as bound arrays). The sent rows run twice: as one query
# text parsed and planned at every run (pgbench's simple protocol), and as a statement
# prepared once (`-M prepared`, as the store's statements are), the fastest a client can
# send them.
made_before=$(pgbench_rate append_100.sql 100)
sent_before=$(pgbench_rate append_100_sent.sql 100)
prepared_before=$(pgbench_rate append_100_sent.sql 100 prepared)
store=$(store_rate append_100_events)
prepared_after=$(pgbench_rate append_100_sent.sql 100 prepared)
sent_after=$(pgbench_rate append_100_sent.sql 100)
made_after=$(pgbench_rate append_100.sql 100)
compare 100 "rows made by the server" "$made_before" "$store" "$made_after"
compare 100 "rows sent by the client" "$sent_before" "$store" "$sent_after"
compare 100 "rows sent, prepared" "$prepared_before" "$store" "$prepared_after"
psql -q "$DATABASE_URL" -c "DROP SCHEMA IF EXISTS pgbench_events CASCADE" >/dev/null 2>&1
