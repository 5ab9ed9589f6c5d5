# Shared helpers of scripts/load.sh, overspend.sh and memory.sh (sourced, not run).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/load_target"
PIDS=()

log() { echo "$(basename "$0"): $*" >&2; }

ensure_wrk() {
    if ! command -v wrk >/dev/null 2>&1; then
        log "installing wrk (Debian package)"
        if [ "$(id -u)" = 0 ]; then apt-get install -y -qq wrk >&2; else sudo apt-get install -y -qq wrk >&2; fi
    fi
}

build_target() {
    log "building load_target (release)"
    if [ -z "${SKIP_BUILD:-}" ]; then (cd "$ROOT" && cargo build --release -q -p ai-metering-bench); fi
}

# start_pg: starts the private PostgreSQL (port $AI_METERING_PG_PORT, default 54339 here so
# that it does not collide with the test one) and sets PG_URL.
start_pg() {
    export AI_METERING_PG_PORT="${AI_METERING_PG_PORT:-54339}"
    eval "$("$ROOT/.ci/start-postgres.sh")"
    PG_URL="$AI_METERING_TEST_POSTGRES_URL"
}

stop_pg() { "$ROOT/.ci/start-postgres.sh" stop >/dev/null 2>&1 || true; }

# serve PORT ARGS...: starts load_target ($SERVE_BIN when set) on 127.0.0.1:PORT (below 32768, outside Linux's
# ephemeral range, so that no client socket of another server holds it), waits until it accepts
# connections, and sets SERVER_PID.
serve() {
    local port="$1"; shift
    "${SERVE_BIN:-$BIN}" --port "$port" "$@" 2>>"${LOAD_LOG:-/dev/null}" &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then log "load_target $* exited"; return 1; fi
        sleep 0.05
    done
    log "load_target on port $port did not start"
    return 1
}

# wrk_totals FILE...: the requests sent and the non-2xx answers over wrk's outputs in FILEs.
wrk_totals() {
    awk '/requests in/ {sent += $1} /Non-2xx/ {refused += $NF} END {print sent + 0, refused + 0}' "$@"
}

stop_server() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

cleanup_servers() {
    for pid in "${PIDS[@]:-}"; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
}

# to_ms "1.23ms" | "456.00us" | "1.20s" -> milliseconds
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n = n / 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n = n * 1000
        printf "%.3f", n }'
}
