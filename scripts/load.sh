#!/usr/bin/env bash
# Load runs on loopback: one axum app (crates/ai-metering-bench, `load_target`) in several
# configurations, each loaded by wrk for a bounded time; prints requests/s, p50, p99, the
# non-2xx count and the ratio to the bare app, all from this one run.
#
#   scripts/load.sh                          # 10 s per configuration, 2 wrk threads, 32 connections
#   DURATION=5s CONNECTIONS=64 scripts/load.sh
#   ROUNDS=5 CONFIGS="bare memory" scripts/load.sh
#
# ROUNDS (default 1) runs the whole list that many times, interleaved, and reports each
# configuration's median: on a shared or virtual machine single runs vary by 10-20%.
#
# Configurations (GET /hello is a limit check only; POST /chat also records usage):
#   bare              no layer
#   memory            QuotaLayer + MemoryStore, limit checks cached (1 h TTL)
#   memory-noheaders  the same without quota headers: the decision's cost alone
#   sqlite            QuotaLayer + SQLite file, default-like 5 s cache
#   sqlite-nocache    QuotaLayer + SQLite file, every request reads the store
#   postgres          QuotaLayer + PostgreSQL, 5 s cache
#   postgres-nocache  QuotaLayer + PostgreSQL, every request reads the store
#   *-chat            POST /chat: reserve an estimate, run, settle the exact usage (writes)
#   *-chat-spread     the same spread over 1,000 billables (BILLABLES), charged in turn
#   raw-sqlite-chat, raw-postgres-chat (and -spread)
#                     the floor: the same writes by hand with sqlx, no layer (a conditional
#                     counter UPDATE to reserve; INSERT usage + counter UPDATE to settle).
#                     The table shows each store configuration's ratio to its raw twin.
#   old-<config>      <config> served by OLD_BIN (the load_target of an older commit, built
#                     beforehand): the table shows <config>'s ratio to it, from this one run.
#                     SQLite configurations only (an older build may not know today's schema).
set -euo pipefail
source "$(dirname "$0")/lib-load.sh"

DURATION="${DURATION:-10s}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-32}"
ROUNDS="${ROUNDS:-1}"
BILLABLES="${BILLABLES:-1000}"
CONFIGS="${CONFIGS:-bare memory sqlite sqlite-nocache postgres postgres-nocache memory-chat sqlite-chat raw-sqlite-chat postgres-chat raw-postgres-chat sqlite-chat-spread raw-sqlite-chat-spread postgres-chat-spread raw-postgres-chat-spread}"

WORK="$(mktemp -d)"
LOAD_LOG="$WORK/servers.log"
trap 'cleanup_servers; stop_pg; rm -rf "$WORK"' EXIT

ensure_wrk
build_target
start_pg

printf 'wrk.method = "POST"\nwrk.body = "{}"\nwrk.headers["Content-Type"] = "application/json"\n' > "$WORK/post.lua"

port=29100
RESULTS="$WORK/results"
: > "$RESULTS"
for round in $(seq 1 "$ROUNDS"); do
for config in $CONFIGS; do
    port=$((port + 1))
    billable="load-$$-$config"
    path=/hello; script=()
    case "$config" in
        *-chat|*-chat-spread) path=/chat; script=(-s "$WORK/post.lua") ;;
    esac
    many=()
    case "$config" in *-spread) many=(--billables "$BILLABLES") ;; esac
    SERVE_BIN=""
    base="$config"
    case "$config" in
        old-*)
            [ -x "${OLD_BIN:-}" ] || { log "$config needs OLD_BIN, an older build's load_target"; exit 2; }
            SERVE_BIN="$OLD_BIN"; base="${config#old-}" ;;
    esac
    case "$base" in
        bare) args=(--store bare) ;;
        memory|memory-chat) args=(--store memory --estimate 200) ;;
        memory-noheaders) args=(--store memory --headers none) ;;
        sqlite) args=(--store sqlite --url "sqlite://$WORK/$config.db" --setup --cache-ms 5000) ;;
        sqlite-nocache) args=(--store sqlite --url "sqlite://$WORK/$config.db" --setup --cache-ms 0) ;;
        sqlite-chat|sqlite-chat-spread) args=(--store sqlite --url "sqlite://$WORK/$config.db" --setup --cache-ms 5000 --estimate 200) ;;
        postgres) args=(--store postgres --url "$PG_URL" --setup --cache-ms 5000) ;;
        postgres-nocache) args=(--store postgres --url "$PG_URL" --setup --cache-ms 0) ;;
        postgres-chat|postgres-chat-spread) args=(--store postgres --url "$PG_URL" --setup --cache-ms 5000 --estimate 200) ;;
        raw-sqlite-chat|raw-sqlite-chat-spread) args=(--store raw-sqlite --url "sqlite://$WORK/$config.db" --setup --estimate 200) ;;
        raw-postgres-chat|raw-postgres-chat-spread) args=(--store raw-postgres --url "$PG_URL" --setup --estimate 200) ;;
        *) log "unknown configuration $config"; exit 2 ;;
    esac
    serve "$port" "${args[@]}" "${many[@]}" --billable "$billable"
    log "round $round/$ROUNDS, $config: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency http://127.0.0.1:$port$path"
    out="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "${script[@]}" "http://127.0.0.1:$port$path")"
    stop_server "$SERVER_PID"
    echo "$out" > "$WORK/$config.wrk"
    rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
    total="$(awk '/requests in/ {print $1}' <<<"$out")"
    p50="$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")"
    p99="$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")"
    non2xx="$(awk '/Non-2xx/ {print $NF}' <<<"$out")"
    errors="$(awk '/Socket errors/ {print $0}' <<<"$out")"
    [ -n "$errors" ] && log "$config: $errors"
    echo "$config $rps $p50 $p99 ${non2xx:-0} $total" >> "$RESULTS"
done
done

# median COLUMN CONFIG: the median of one column over a configuration's rounds.
median() {
    awk -v c="$2" -v k="$1" '$1 == c { print $k }' "$RESULTS" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
spread() {
    awk -v c="$1" '$1 == c { print $2 }' "$RESULTS" | sort -g |
        awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.0f-%.0f", lo, hi }'
}

echo
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION on 127.0.0.1, $(nproc) CPUs (load generator and server share them), median of $ROUNDS round(s)"
bare="$(median 2 bare 2>/dev/null || true)"
printf '| %-24s | %10s | %13s | %9s | %9s | %8s | %10s | %9s | %9s |\n' configuration requests/s "range (rps)" "p50 ms" "p99 ms" non-2xx ratio/bare ratio/raw ratio/old
printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' -------------------------- ------------ --------------- ----------- ----------- ---------- ------------ ----------- -----------
seen=" "
for config in $CONFIGS; do
    case "$seen" in *" $config "*) continue ;; esac
    seen="$seen$config "
    rps="$(median 2 "$config")"
    ratio="$(awk -v r="$rps" -v b="${bare:-0}" 'BEGIN { if (b > 0) printf "%.2fx", r / b; else print "n/a" }')"
    non2xx="$(awk -v c="$config" '$1 == c { n += $5 } END { print n + 0 }' "$RESULTS")"
    raw="$(median 2 "raw-$config" 2>/dev/null || true)"
    vs_raw="$(awk -v r="$rps" -v b="${raw:-0}" 'BEGIN { if (b > 0) printf "%.2fx", r / b; else print "" }')"
    old="$(median 2 "old-$config" 2>/dev/null || true)"
    vs_old="$(awk -v r="$rps" -v b="${old:-0}" 'BEGIN { if (b > 0) printf "%.2fx", r / b; else print "" }')"
    printf '| %-24s | %10.0f | %13s | %9.3f | %9.3f | %8d | %10s | %9s | %9s |\n' \
        "$config" "$rps" "$(spread "$config")" "$(median 3 "$config")" "$(median 4 "$config")" "$non2xx" "$ratio" "$vs_raw" "$vs_old"
done
