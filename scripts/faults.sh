#!/usr/bin/env bash
# Fault runs (issue 17): steady load on POST /chat (reserve, record, settle) through
# QuotaLayer, while a fault happens; then what the clients saw, whether and when the service
# recovered, whether every 200 was recorded, and `ai-metering check` on the database.
#
#   scripts/faults.sh                        # every fault on both stores
#   FAULTS="pg-stop kill-pg" scripts/faults.sh
#
# Faults: pg-stop (PostgreSQL stopped 10 s, then started), kill-pg / kill-sqlite (SIGKILL one
# of two app processes), disk-full (the SQLite file on a tmpfs of DISK_FULL_SIZE, default
# 4m, filled up, then freed),
# lock-pg / lock-sqlite (a table, or the SQLite file, locked from another session for 5 s).
# PostgreSQL is a private instance on port 54349 (its own data directory), never the test
# one. Only 127.0.0.1; every loop is bounded. Results: a Markdown table on stdout.
# KEEP_WORK=1 keeps the work directory (logs, wrk and probe output, check's JSON).
set -euo pipefail
source "$(dirname "$0")/lib-load.sh"

FAULTS="${FAULTS:-pg-stop kill-pg kill-sqlite lock-pg lock-sqlite disk-full}"
DURATION="${DURATION:-30}"   # seconds of load
AT="${AT:-8}"                # seconds into the load when the fault starts
CONNS="${CONNS:-8}"          # wrk connections per app process
CLI="${CARGO_TARGET_DIR:-$ROOT/target}/release/ai-metering"
export AI_METERING_PG_PORT="${FAULT_PG_PORT:-54349}"
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"

WORK="$(mktemp -d)"
LOAD_LOG="$WORK/servers.log"
MNT="$WORK/tmpfs"
trap 'cleanup_servers; stop_pg; mountpoint -q "$MNT" && umount "$MNT"; if [ -n "${KEEP_WORK:-}" ]; then log "kept $WORK"; else rm -rf "$WORK"; fi' EXIT

ensure_wrk
if [ -z "${SKIP_BUILD:-}" ]; then
    log "building load_target and ai-metering (release)"
    (cd "$ROOT" && cargo build --release -q -p ai-metering-bench -p ai-metering-cli)
fi

# wrk counts each status (one thread, so its table is the whole run's).
cat > "$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = "{}"
wrk.headers["Content-Type"] = "application/json"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
    for _, t in ipairs(threads) do
        for status, n in pairs(t:get("statuses")) do io.write("status ", status, " ", n, "\n") end
    end
    local e = summary.errors
    io.write("socket_errors ", e.connect + e.read + e.write + e.timeout, "\n")
end
LUA

# probe PORT SECONDS: one POST every 0.25 s, "elapsed-ms status" per line.
probe() {
    local port="$1" seconds="$2" start now code
    start=$(date +%s%3N)
    for _ in $(seq 1 $((seconds * 4))); do
        code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
            -d '{}' "http://127.0.0.1:$port/chat" || true)
        now=$(date +%s%3N)
        echo "$((now - start)) $code"
        sleep 0.25
    done
}

# sql_count URL BILLABLE: usage rows of the billable.
sql_count() {
    local url="$1" billable="$2"
    case "$url" in
        postgres*) psql "$url" -At -c "SELECT count(*) FROM ai_usages WHERE billable_id = '$billable'" ;;
        sqlite*) python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"SELECT count(*) FROM ai_usages WHERE billable_id = ?\", (sys.argv[2],)).fetchone()[0])" "${url#sqlite://}" "$billable" ;;
    esac
}

RESULTS="$WORK/results"
: > "$RESULTS"

# run FAULT STORE URL PROCESSES: loads PROCESSES app processes for DURATION s, calls
# fault_FAULT at AT s, and appends a result line.
run() {
    local fault="$1" store="$2" url="$3" processes="$4"
    local billable="fault-$fault-$$" ports=() pids=() wrks=()
    "$BIN" --store "$store" --url "$url" --setup-only --billable "$billable"
    for n in $(seq 1 "$processes"); do
        local port=$((29600 + n))
        serve "$port" --store "$store" --url "$url" --billable "$billable" --estimate 100 --cache-ms 1000
        ports+=("$port"); pids+=("$SERVER_PID")
    done
    log "$fault: $processes x $store, $CONNS connections each, ${DURATION}s, fault at ${AT}s"
    for port in "${ports[@]}"; do
        wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 5s -s "$WORK/post.lua" "http://127.0.0.1:$port/chat" \
            > "$WORK/wrk-$fault-$port" 2>&1 &
        wrks+=($!)
    done
    probe "${ports[-1]}" "$((DURATION + 5))" > "$WORK/probe-$fault" &
    local probe_pid=$!
    sleep "$AT"
    local fault_start fault_end
    fault_start=$(date +%s%3N)
    "fault_$fault" "$url" "${pids[@]}"
    fault_end=$(date +%s%3N)
    wait "${wrks[@]}" || true
    wait "$probe_pid" || true
    for pid in "${pids[@]}"; do stop_server "$pid"; done
    sleep 1

    local ok=0 other="" socket=0
    for port in "${ports[@]}"; do
        ok=$((ok + $(awk '$1 == "status" && $2 == 200 {n += $3} END {print n + 0}' "$WORK/wrk-$fault-$port")))
        socket=$((socket + $(awk '$1 == "socket_errors" {print $2}' "$WORK/wrk-$fault-$port")))
        other="$other $(awk '$1 == "status" && $2 != 200 {printf "%s:%s ", $2, $3}' "$WORK/wrk-$fault-$port")"
    done
    local probe_ok
    probe_ok=$(awk '$2 == 200 {n++} END {print n + 0}' "$WORK/probe-$fault")
    # Recovery: the first 200 of the probe after the fault ended (ms after its end).
    local recovery
    recovery=$(awk -v start_ms="$AT" -v dur_ms="$(( fault_end - fault_start ))" \
        'BEGIN { end_ms = start_ms * 1000 + dur_ms; r = "never" }
         $1 >= end_ms && $2 == 200 && r == "never" { r = $1 - end_ms }
         END { print r }' "$WORK/probe-$fault")
    local probe_bad
    probe_bad=$(awk '$2 != 200 {c[$2]++} END {for (k in c) printf "%s:%s ", k, c[k]}' "$WORK/probe-$fault")
    local rows
    rows=$(sql_count "$url" "$billable")
    local check_json="$WORK/check-$fault.json" check_rc=0
    "$CLI" --database-url "$url" check --billable "user:$billable" --format json > "$check_json" 2>"$WORK/check-$fault.err" || check_rc=$?
    local findings
    findings=$(python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(', '.join(f\"{f['kind']} ({f['severity']})\" for f in r['findings']) or 'none'); " "$check_json" 2>/dev/null || echo "check failed: $(tail -1 "$WORK/check-$fault.err")")
    local live
    live=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['checked']['reservations'])" "$check_json" 2>/dev/null || echo "?")
    # Every 200 must be a row; a row more than the 200s is a call whose reply was lost
    # (the client timed out or the process died after the commit).
    local verdict="ok"
    if [ "$rows" -lt $((ok + probe_ok)) ]; then
        verdict="200 NOT RECORDED: $((ok + probe_ok - rows))"
    elif [ "$rows" -gt $((ok + probe_ok)) ]; then
        verdict="ok (+$((rows - ok - probe_ok)) replies lost)"
    fi
    echo "| $fault | $store x$processes | $((ok + probe_ok)) | $rows | ${other// /} ${probe_bad:+probe $probe_bad} | $socket | $recovery | $check_rc | $live | $findings | $verdict |" >> "$RESULTS"
    log "$fault: 200s=$((ok + probe_ok)) rows=$rows other=[$other] probe=[$probe_bad] socket=$socket recovery=${recovery}ms check=$check_rc ($findings)"
}

fault_pg-stop() {
    stop_pg
    sleep 10
    start_pg >/dev/null
}

fault_kill() { kill -KILL "$2"; }
fault_kill-pg() { fault_kill "$@"; }
fault_kill-sqlite() { fault_kill "$@"; }

fault_lock-pg() {
    psql "$1" -q -c "BEGIN; LOCK TABLE ai_period_counters IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(5); COMMIT;" >/dev/null
}

fault_lock-sqlite() {
    python3 -c "import sqlite3,sys,time; c = sqlite3.connect(sys.argv[1], isolation_level=None); c.execute('BEGIN EXCLUSIVE'); time.sleep(5); c.execute('COMMIT')" "${1#sqlite://}"
}

fault_disk-full() {
    # Fill what is left of the tmpfs, keep it full 10 s, then free it.
    dd if=/dev/zero of="$MNT/filler" bs=64k 2>/dev/null || true
    sleep 10
    rm -f "$MNT/filler"
}

sqlite_url() {
    local file="$1"
    python3 - "$file" <<'PY' >/dev/null
import sqlite3, sys
sqlite3.connect(sys.argv[1]).close()
PY
    echo "sqlite://$file"
}

for fault in $FAULTS; do
    case "$fault" in
        pg-stop | kill-pg | lock-pg)
            start_pg >/dev/null
            run "$fault" postgres "$PG_URL" 2
            ;;
        kill-sqlite) run "$fault" sqlite "$(sqlite_url "$WORK/kill.db")" 2 ;;
        lock-sqlite) run "$fault" sqlite "$(sqlite_url "$WORK/lock.db")" 1 ;;
        disk-full)
            mkdir -p "$MNT"
            mount -t tmpfs -o "size=${DISK_FULL_SIZE:-4m}" tmpfs "$MNT"
            run "$fault" sqlite "$(sqlite_url "$MNT/full.db")" 1
            umount "$MNT"
            ;;
        *) log "unknown fault $fault"; exit 2 ;;
    esac
done

echo
echo "${DURATION} s of load, $CONNS wrk connections per process, fault at ${AT} s (pid $$)"
echo
echo "| fault | store | 200s (wrk + probe) | usage rows | other statuses | socket errors | recovery (ms after fault) | check exit | live reservations | check findings | every 200 recorded |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
cat "$RESULTS"
