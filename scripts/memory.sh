#!/usr/bin/env bash
# Resident memory of load_target (QuotaLayer + MemoryStore, cached limit checks) under a
# sustained wrk load: VmRSS from /proc/PID/status every few seconds, and the request count.
#
#   scripts/memory.sh                   # 40 s (about 1M requests on 2 cores), sample every 4 s
#   DURATION=60 INTERVAL=5 PATH_=/chat scripts/memory.sh
set -euo pipefail
source "$(dirname "$0")/lib-load.sh"

DURATION="${DURATION:-40}"
INTERVAL="${INTERVAL:-4}"
ROUTE="${ROUTE:-/hello}"
CONNECTIONS="${CONNECTIONS:-32}"

WORK="$(mktemp -d)"
trap 'cleanup_servers; rm -rf "$WORK"' EXIT
ensure_wrk
build_target

serve 29300 --store memory
pid="$SERVER_PID"
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"; }
echo "before load: VmRSS $(rss) kB"
wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" "http://127.0.0.1:29300$ROUTE" > "$WORK/wrk" &
wrk_pid=$!
t=0
echo "| t (s) | VmRSS (kB) |"
echo "|-------|------------|"
while kill -0 "$wrk_pid" 2>/dev/null; do
    printf '| %5d | %10s |\n' "$t" "$(rss)"
    sleep "$INTERVAL"
    t=$((t + INTERVAL))
done
wait "$wrk_pid"
printf '| after | %10s |\n' "$(rss)"
echo
grep -E 'requests in|Requests/sec|Non-2xx' "$WORK/wrk"
stop_server "$pid"
