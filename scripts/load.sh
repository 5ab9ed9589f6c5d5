#!/usr/bin/env bash
# Load runs on loopback: one axum app (crates/ai-metering-bench, `load_target`) in several
# configurations, each loaded by wrk for a bounded time; prints requests/s, p50, p99, the
# non-2xx count and the ratio to the bare app, all from this one run.
#
#   scripts/load.sh                     # 10 s per configuration, 2 wrk threads, 32 connections
#   DURATION=5s CONNECTIONS=64 scripts/load.sh
#
# Configurations (GET /hello is a limit check only; POST /chat also records usage):
#   bare              no layer
#   memory            QuotaLayer + MemoryStore, limit checks cached (1 h TTL)
#   sqlite            QuotaLayer + SQLite file, default-like 5 s cache
#   sqlite-nocache    QuotaLayer + SQLite file, every request reads the store
#   postgres          QuotaLayer + PostgreSQL, 5 s cache
#   postgres-nocache  QuotaLayer + PostgreSQL, every request reads the store
#   *-chat            POST /chat: reserve an estimate, run, settle the exact usage (writes)
set -euo pipefail
source "$(dirname "$0")/lib-load.sh"

DURATION="${DURATION:-10s}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-32}"
CONFIGS="${CONFIGS:-bare memory sqlite sqlite-nocache postgres postgres-nocache memory-chat sqlite-chat postgres-chat}"

WORK="$(mktemp -d)"
LOAD_LOG="$WORK/servers.log"
trap 'cleanup_servers; stop_pg; rm -rf "$WORK"' EXIT

ensure_wrk
build_target
start_pg

printf 'wrk.method = "POST"\nwrk.body = "{}"\nwrk.headers["Content-Type"] = "application/json"\n' > "$WORK/post.lua"

port=39100
RESULTS="$WORK/results"
: > "$RESULTS"
for config in $CONFIGS; do
    port=$((port + 1))
    billable="load-$$-$config"
    path=/hello; script=()
    case "$config" in
        *-chat) path=/chat; script=(-s "$WORK/post.lua") ;;
    esac
    case "$config" in
        bare) args=(--store bare) ;;
        memory|memory-chat) args=(--store memory --estimate 200) ;;
        sqlite) args=(--store sqlite --url "sqlite://$WORK/$config.db" --setup --cache-ms 5000) ;;
        sqlite-nocache) args=(--store sqlite --url "sqlite://$WORK/$config.db" --setup --cache-ms 0) ;;
        sqlite-chat) args=(--store sqlite --url "sqlite://$WORK/$config.db" --setup --cache-ms 5000 --estimate 200) ;;
        postgres) args=(--store postgres --url "$PG_URL" --setup --cache-ms 5000) ;;
        postgres-nocache) args=(--store postgres --url "$PG_URL" --setup --cache-ms 0) ;;
        postgres-chat) args=(--store postgres --url "$PG_URL" --setup --cache-ms 5000 --estimate 200) ;;
        *) log "unknown configuration $config"; exit 2 ;;
    esac
    serve "$port" "${args[@]}" --billable "$billable"
    log "$config: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency http://127.0.0.1:$port$path"
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

echo
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION on 127.0.0.1, $(nproc) CPUs (load generator and server share them)"
awk 'BEGIN {
        printf "| %-17s | %10s | %9s | %9s | %8s | %11s |\n", "configuration", "requests/s", "p50 ms", "p99 ms", "non-2xx", "ratio/bare"
        printf "|%s|%s|%s|%s|%s|%s|\n", "-------------------", "------------", "-----------", "-----------", "----------", "-------------" }
     $1 == "bare" { bare = $2 }
     { rows[NR] = $0 }
     END {
        for (i = 1; i <= NR; i++) {
            split(rows[i], f, " ")
            ratio = (bare > 0) ? sprintf("%.2fx", f[2] / bare) : "n/a"
            printf "| %-17s | %10.0f | %9.3f | %9.3f | %8d | %11s |\n", f[1], f[2], f[3], f[4], f[5], ratio
        }
     }' "$RESULTS"
