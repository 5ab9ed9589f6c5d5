#!/usr/bin/env bash
# The overspend test: N load_target processes share one PostgreSQL, each loaded by wrk with
# M connections on POST /chat (reserve the estimate, record the exact usage, settle), until
# the billable's token limit L is exhausted. Afterwards the database is asked what was
# recorded: the overspend (recorded tokens - L, must be <= 0) and the accepted requests
# against the theoretical maximum floor(L / tokens per request).
#
#   scripts/overspend.sh                  # N=3, M=16, 6 s per scenario
#   N=4 M=32 DURATION=10s scripts/overspend.sh
set -euo pipefail
source "$(dirname "$0")/lib-load.sh"

N="${N:-3}"
M="${M:-16}"
DURATION="${DURATION:-6s}"
# Scenarios: "limit estimate input,output"
# The last one reserves less than a request spends: the store records what was spent, so it
# overspends by design, at most (spent - estimate) per request in flight; it is reported
# apart from the guarantee, which holds for estimates >= the actual usage.
SCENARIOS="${SCENARIOS:-30000 100 60,40|30050 100 60,40|30000 150 60,40|30000 1000 900,100|30000 100 900,100}"

WORK="$(mktemp -d)"
LOAD_LOG="$WORK/servers.log"
trap 'cleanup_servers; stop_pg; rm -rf "$WORK"' EXIT

ensure_wrk
build_target
start_pg
printf 'wrk.method = "POST"\nwrk.body = "{}"\nwrk.headers["Content-Type"] = "application/json"\n' > "$WORK/post.lua"

ROWS="$WORK/rows"
: > "$ROWS"
i=0
IFS='|' read -ra list <<<"$SCENARIOS"
for scenario in "${list[@]}"; do
    read -r limit estimate usage <<<"$scenario"
    i=$((i + 1))
    billable="overspend-$$-$i"
    per_request=$(( ${usage%,*} + ${usage#*,} ))
    "$BIN" --store postgres --url "$PG_URL" --setup-only --billable "$billable" --limit "$limit"
    pids=()
    for n in $(seq 1 "$N"); do
        serve $((29200 + 10 * i + n)) --store postgres --url "$PG_URL" --billable "$billable" \
            --limit "$limit" --estimate "$estimate" --usage "$usage" --cache-ms 5000
        pids+=("$SERVER_PID")
    done
    log "scenario $i: L=$limit estimate=$estimate usage=$usage, $N processes x $M connections, $DURATION"
    wrks=()
    for n in $(seq 1 "$N"); do
        wrk -t1 -c"$M" -d"$DURATION" -s "$WORK/post.lua" "http://127.0.0.1:$((29200 + 10 * i + n))/chat" > "$WORK/wrk-$i-$n" &
        wrks+=($!)
    done
    wait "${wrks[@]}"
    for pid in "${pids[@]}"; do stop_server "$pid"; done
    read -r requests refused <<<"$(wrk_totals "$WORK"/wrk-"$i"-*)"
    read -r rows tokens <<<"$(psql "$PG_URL" -At -F ' ' -c \
        "SELECT count(*), coalesce(sum(total_tokens), 0)::bigint FROM ai_usages WHERE billable_type = 'user' AND billable_id = '$billable'")"
    echo "$i $N $M $limit $estimate $per_request $requests $refused $rows $((limit / per_request)) $tokens $((tokens - limit))" >> "$ROWS"
done

echo
echo "$N processes x $M connections (wrk), one PostgreSQL, $DURATION per scenario"
awk 'BEGIN {
        printf "| # | limit L | estimate | tokens/request | requests sent | refused (non-2xx) | recorded rows | max L/t | recorded tokens | overspend |\n"
        printf "|---|---------|----------|----------------|---------------|-------------------|---------------|---------|-----------------|-----------|\n" }
     { over = ($12 > 0) ? $12 : 0
       if ($5 >= $6) { worst = (over > worst) ? over : worst; note = "" } else { note = " (estimate < usage)" }
       printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s%s |\n", $1, $4, $5, $6, $7, $8, $9, $10, $11, over, note }
     END { printf "\nlargest overspend with estimate >= usage: %d tokens\n", worst; if (worst > 0) exit 1 }' "$ROWS"
