#!/usr/bin/env bash
# The gateway's overspend test: N `ai-metering serve` processes share one PostgreSQL, each
# loaded by wrk with M connections on POST /v1/chat/completions (through the built-in mock
# upstream, so every call takes the gateway's real path: key, reservation, upstream,
# settlement), until the billable's token limit L is exhausted. The database then says what
# was recorded: the overspend (recorded tokens - L) must be 0, since every request carries
# max_tokens and the gateway's estimate is at least the call's usage.
#
#   scripts/gateway-overspend.sh                      # N=2, M=16, L=30000, 6 s
#   N=3 M=32 DURATION=10s scripts/gateway-overspend.sh
#   SKIP_BUILD=1 CARGO_TARGET_DIR=... scripts/gateway-overspend.sh   # an existing release build
set -euo pipefail
source "$(dirname "$0")/lib-load.sh"

N="${N:-2}"
M="${M:-16}"
L="${L:-30000}"
DURATION="${DURATION:-6s}"
MAX_TOKENS="${MAX_TOKENS:-40}"

WORK="$(mktemp -d)"
LOAD_LOG="$WORK/servers.log"
trap 'cleanup_servers; stop_pg; rm -rf "$WORK"' EXIT

ensure_wrk
CLI="${CARGO_TARGET_DIR:-$ROOT/target}/release/ai-metering"
if [ -z "${SKIP_BUILD:-}" ]; then (cd "$ROOT" && cargo build --release -q -p ai-metering-cli); fi
start_pg

cat > "$WORK/ai-metering.toml" <<'EOF'
[gateway]
default_upstream = "mock"

[gateway.upstreams.mock]
kind = "mock"
EOF
am() { "$CLI" --config "$WORK/ai-metering.toml" --database-url "$PG_URL" "$@"; }

am migrate >/dev/null
plan="gw-$$"
billable="team:gw-$$"
am plans create "$plan" --token-limit "$L" --overage-policy block >/dev/null
am subscribe "$billable" "$plan" >/dev/null
key="$(am keys create "$billable" --name load --format json | sed -n 's/.*"secret": "\(amk_[^"]*\)".*/\1/p')"
[ -n "$key" ] || { log "no key was created"; exit 1; }

# The mock counts the prompt at 4 bytes a token plus 4 per message; the reply is max_tokens.
content="Count to ten."
per_request=$(( (${#content} + 3) / 4 + 4 + MAX_TOKENS ))
cat > "$WORK/post.lua" <<EOF
wrk.method = "POST"
wrk.body = '{"model":"gpt-4o-mini","max_tokens":$MAX_TOKENS,"messages":[{"role":"user","content":"$content"}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
EOF

pids=()
for n in $(seq 1 "$N"); do
    port=$((29400 + n))
    # The binary itself in the background (not through `am`, whose subshell would be the
    # process killed at the end, leaving the server running).
    "$CLI" --config "$WORK/ai-metering.toml" --database-url "$PG_URL" serve \
        --listen "127.0.0.1:$port" 2>>"$LOAD_LOG" >/dev/null &
    pids+=($!)
    PIDS+=($!)
    up=""
    for _ in $(seq 1 200); do
        if ! kill -0 "$!" 2>/dev/null; then break; fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then up=1; break; fi
        sleep 0.05
    done
    if [ -z "$up" ]; then
        log "the gateway on port $port did not start (is the port taken?):"
        cat "$LOAD_LOG" >&2
        exit 1
    fi
done
log "$N gateways x $M connections, L=$L, $per_request tokens per request, $DURATION"
wrks=()
for n in $(seq 1 "$N"); do
    wrk -t1 -c"$M" -d"$DURATION" -s "$WORK/post.lua" "http://127.0.0.1:$((29400 + n))/v1/chat/completions" > "$WORK/wrk-$n" &
    wrks+=($!)
done
wait "${wrks[@]}"
for pid in "${pids[@]}"; do stop_server "$pid"; done

read -r requests refused <<<"$(wrk_totals "$WORK"/wrk-*)"
if [ "$requests" -eq 0 ] || [ "$requests" -eq "$refused" ]; then
    log "no call went through: $requests requests, $refused refused; the run proves nothing"
    cat "$LOAD_LOG" >&2
    exit 1
fi
read -r rows tokens <<<"$(psql "$PG_URL" -At -F ' ' -c \
    "SELECT count(*), coalesce(sum(total_tokens), 0)::bigint FROM ai_usages WHERE billable_type = 'team' AND billable_id = 'gw-$$'")"
over=$(( tokens - L ))
[ "$over" -lt 0 ] && over=0
echo
echo "$N gateway processes (ai-metering serve) x $M connections (wrk), one PostgreSQL, $DURATION"
echo "| limit L | tokens/request | requests sent | refused (non-2xx) | recorded rows | max L/t | recorded tokens | overspend |"
echo "|---------|----------------|---------------|-------------------|---------------|---------|-----------------|-----------|"
echo "| $L | $per_request | $requests | $refused | $rows | $((L / per_request)) | $tokens | $over |"
if [ "$over" -gt 0 ]; then exit 1; fi
