#!/usr/bin/env bash
# PostgreSQL appends beside pgbench, interleaved: pgbench, the store bench, pgbench again, for
# 1 and for 100 events per append, one client, same server. pgbench's rate varies from run to
# run, so the store's rate is compared with the mean of the two pgbench runs around it.
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
            eventsource-runtime/src/postgres/schema.sql | sed 's/__schema__/pgbench_events/g'
        echo "CREATE SEQUENCE pgbench_events.versions;"
    } | psql -q -v ON_ERROR_STOP=1 "$DATABASE_URL" >/dev/null 2>&1
}

pgbench_rate() { # script, events per transaction -> events/s
    pgbench_table
    local tps
    tps=$(pgbench -n -c 1 -T "$seconds" -f "$dir/$1" "$DATABASE_URL" 2>/dev/null \
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

cargo bench -q --bench store --no-run 2>/dev/null
for per in 1 100; do
    group=append_1_event script=append_1.sql
    [ "$per" = 100 ] && group=append_100_events script=append_100.sql
    before=$(pgbench_rate "$script" "$per")
    store=$(store_rate "$group")
    after=$(pgbench_rate "$script" "$per")
    python3 - "$per" "$before" "$store" "$after" <<'PY'
import sys
per, before, store, after = sys.argv[1], *map(float, sys.argv[2:])
mean = (before + after) / 2
print(f"{per:>3} event(s)/append: pgbench {before:,.0f} and {after:,.0f} events/s (mean {mean:,.0f}); "
      f"eventsource {store:,.0f} events/s = {store / mean:.2f}x pgbench ({mean / store:.2f}x slower)")
PY
done
psql -q "$DATABASE_URL" -c "DROP SCHEMA IF EXISTS pgbench_events CASCADE" >/dev/null 2>&1
