#!/usr/bin/env bash
# What the gateway adds, measured in one run against one external mock upstream
# (`mock_upstream`: the gateway's mock as its own HTTP server, so every configuration pays
# the same HTTP hop to it):
#
#   direct      the mock upstream called directly: the baseline;
#   gw-sqlite   `ai-metering serve` on SQLite in front of it, budgets enforced (a plan with a
#               token limit: every call authenticated, reserved, proxied and recorded);
#   gw-postgres the same on PostgreSQL (the script starts its own);
#   litellm     LiteLLM's proxy answering the same completion with `mock_response`, its
#               master key checked, no budgets, no database (only when LITELLM names its
#               `litellm` command: `pip install 'litellm[proxy]'` in a venv).
#
# Each configuration gets wrk at 32 connections (the highest sustainable rate on this
# machine, wrk on the same cores) and a fixed rate of RATE requests/s with oha (when OHA
# names it): requests/s, p50 and p99. The gateway's own `ai_metering_gateway_overhead_seconds`
# (its time minus the upstream's) is read from /metrics after each gateway run.
#
#   scripts/gateway-load.sh
#   LITELLM=venv/bin/litellm OHA=~/.cargo/bin/oha RATE=1000 scripts/gateway-load.sh
#       (oha: `cargo install oha`; LiteLLM: `python3 -m venv venv && venv/bin/pip install 'litellm[proxy]'`)
#   SKIP_BUILD=1 CARGO_TARGET_DIR=... scripts/gateway-load.sh   # an existing release build
set -euo pipefail
source "$(dirname "$0")/lib-load.sh"

DURATION="${DURATION:-8s}"
RATE="${RATE:-1000}"
RATE_SECS="${RATE_SECS:-10}"
MAX_TOKENS="${MAX_TOKENS:-16}"
OHA="${OHA:-$(command -v oha || true)}"
LITELLM="${LITELLM:-}"

WORK="$(mktemp -d)"
LOAD_LOG="$WORK/servers.log"
trap 'cleanup_servers; stop_pg; rm -rf "$WORK"' EXIT

ensure_wrk
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}/release"
if [ -z "${SKIP_BUILD:-}" ]; then
    log "building ai-metering and mock_upstream (release)"
    (cd "$ROOT" && cargo build --release -q -p ai-metering-cli -p ai-metering-bench --bin mock_upstream)
fi
CLI="$TARGET/ai-metering"
MOCK="$TARGET/mock_upstream"

# wait_port PORT PID NAME: until PORT accepts connections (or PID exits).
wait_port() {
    for _ in $(seq 1 400); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        if ! kill -0 "$2" 2>/dev/null; then log "$3 exited"; tail -20 "$LOAD_LOG" >&2; return 1; fi
        sleep 0.05
    done
    log "$3 did not start on port $1"
    return 1
}

MOCK_PORT=29601
"$MOCK" --port "$MOCK_PORT" >/dev/null 2>>"$LOAD_LOG" &
PIDS+=("$!")
wait_port "$MOCK_PORT" "$!" mock_upstream

content="Count to ten."
body="{\"model\":\"gpt-4o-mini\",\"max_tokens\":$MAX_TOKENS,\"messages\":[{\"role\":\"user\",\"content\":\"$content\"}]}"

# lua KEY: a wrk script posting the body (with the key, when there is one).
lua() {
    {
        echo 'wrk.method = "POST"'
        echo "wrk.body = '$body'"
        echo 'wrk.headers["Content-Type"] = "application/json"'
        if [ -n "$1" ]; then echo "wrk.headers[\"Authorization\"] = \"Bearer $1\""; fi
    } > "$WORK/post.lua"
}

RESULTS="$WORK/results"
: > "$RESULTS"

# measure NAME URL KEY: wrk at 32 connections, then oha at RATE requests/s.
measure() {
    local name="$1" url="$2" key="$3"
    lua "$key"
    # Warm up (connections, caches, the SQLite file).
    wrk -t2 -c8 -d2s -s "$WORK/post.lua" "$url" >/dev/null
    wrk -t2 -c32 -d"$DURATION" --latency -s "$WORK/post.lua" "$url" > "$WORK/$name.wrk"
    local rps p50 p99 non2xx
    rps="$(awk '/Requests\/sec/ {printf "%d", $2}' "$WORK/$name.wrk")"
    p50="$(to_ms "$(awk '$1 == "50%" {print $2}' "$WORK/$name.wrk")")"
    p99="$(to_ms "$(awk '$1 == "99%" {print $2}' "$WORK/$name.wrk")")"
    non2xx="$(awk '/Non-2xx/ {print $NF}' "$WORK/$name.wrk")"
    local fixed="-"
    if [ -n "$OHA" ]; then
        local auth=()
        if [ -n "$key" ]; then auth=(-H "Authorization: Bearer $key"); fi
        "$OHA" --no-tui -z "${RATE_SECS}s" -q "$RATE" -c 32 --latency-correction \
            --output-format json -m POST -T application/json -d "$body" "${auth[@]}" "$url" \
            > "$WORK/$name.oha"
        # p50 and p99 in ms, the share of 2xx answers, and the rate achieved.
        fixed="$(python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
p = d["latencyPercentiles"]
codes = d.get("statusCodeDistribution", {})
total = sum(codes.values()) or 1
ok = sum(n for c, n in codes.items() if c.startswith("2")) / total
print("%.3f %.3f %.1f%%/%d" % (p["p50"] * 1000, p["p99"] * 1000, ok * 100, d["summary"]["requestsPerSec"]))' "$WORK/$name.oha")"
    fi
    echo "$name $rps $p50 $p99 ${non2xx:-0} $fixed" >> "$RESULTS"
    log "$name: $rps req/s, p50 $p50 ms, p99 $p99 ms (non-2xx ${non2xx:-0}); at $RATE/s: $fixed"
}

# The gateway's overhead summary from /metrics, as "p50 p99" in milliseconds.
overhead() {
    curl -s "$1/metrics" | awk '
        /^ai_metering_gateway_overhead_seconds\{.*quantile="0.5"/ {p50 = $NF * 1000}
        /^ai_metering_gateway_overhead_seconds\{.*quantile="0.99"/ {p99 = $NF * 1000}
        END {printf "%.3f %.3f", p50, p99}'
}

measure direct "http://127.0.0.1:$MOCK_PORT/v1/chat/completions" ""

cat > "$WORK/ai-metering.toml" <<EOF
[gateway]
default_upstream = "mock"

[gateway.upstreams.mock]
base_url = "http://127.0.0.1:$MOCK_PORT/v1"
api_key_env = "MOCK_UPSTREAM_KEY"
EOF
export MOCK_UPSTREAM_KEY=sk-mock

# gateway NAME DATABASE_URL PORT: a migrated database with a budgeted billable and its key,
# then `serve` on PORT, measured.
gateway() {
    local name="$1" url="$2" port="$3"
    am() { "$CLI" --config "$WORK/ai-metering.toml" --database-url "$url" "$@"; }
    am migrate >/dev/null
    local plan="perf-$$-$port"
    am plans create "$plan" --token-limit 1000000000000 >/dev/null
    am subscribe "team:$plan" "$plan" >/dev/null
    local key
    key="$(am keys create "team:$plan" --name load --format json | sed -n 's/.*"secret": "\(amk_[^"]*\)".*/\1/p')"
    [ -n "$key" ] || { log "no key was created"; exit 1; }
    AI_METERING_LOG_LEVEL=warn "$CLI" --config "$WORK/ai-metering.toml" --database-url "$url" \
        serve --listen "127.0.0.1:$port" >/dev/null 2>>"$LOAD_LOG" &
    local pid=$!
    PIDS+=("$pid")
    wait_port "$port" "$pid" "serve ($name)"
    measure "$name" "http://127.0.0.1:$port/v1/chat/completions" "$key"
    echo "$name $(overhead "http://127.0.0.1:$port")" >> "$WORK/overhead"
    stop_server "$pid"
}

gateway gw-sqlite "sqlite://$WORK/gateway.db?mode=rwc" 29602
start_pg
gateway gw-postgres "$PG_URL" 29603

if [ -n "$LITELLM" ]; then
    # A master key, so that LiteLLM authenticates each request as the gateway does (in
    # memory: no database, so no budgets); its price map from the package (no network).
    litellm_key="sk-litellm-load-0123456789abcdef"
    cat > "$WORK/litellm.yaml" <<EOF
model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      mock_response: "$(printf 'ok %.0s' $(seq 1 "$MAX_TOKENS"))"
general_settings:
  master_key: $litellm_key
EOF
    LITELLM_LOCAL_MODEL_COST_MAP=True "$LITELLM" --config "$WORK/litellm.yaml" --port 29604 \
        --num_workers "${LITELLM_WORKERS:-1}" >/dev/null 2>>"$LOAD_LOG" &
    PIDS+=("$!")
    wait_port 29604 "$!" litellm
    measure litellm "http://127.0.0.1:29604/v1/chat/completions" "$litellm_key"
fi

echo
echo "wrk -t2 -c32 -d$DURATION (saturation), and oha at $RATE requests/s for ${RATE_SECS}s:"
printf '%-12s %10s %9s %9s %7s | %9s %9s %14s\n' config "req/s" "p50 ms" "p99 ms" non2xx "p50 ms" "p99 ms" "2xx/achieved"
while read -r name rps p50 p99 non o50 o99 ok; do
    printf '%-12s %10s %9s %9s %7s | %9s %9s %14s\n' "$name" "$rps" "$p50" "$p99" "$non" "${o50:--}" "${o99:--}" "${ok:--}"
done < "$RESULTS"
echo
echo "Added by the gateway (its p50 / p99 minus the direct call's):"
awk 'NR == FNR { if ($1 == "direct") { d50 = $3; d99 = $4; f50 = $6; f99 = $7 } next }
     $1 ~ /^gw-/ { printf "  %-12s saturation %+.3f / %+.3f ms", $1, $3 - d50, $4 - d99
                   if ($6 != "") printf "; at the fixed rate %+.3f / %+.3f ms", $6 - f50, $7 - f99
                   printf "\n" }' "$RESULTS" "$RESULTS"
echo
echo "The gateway's /metrics summary of ai_metering_gateway_overhead_seconds (p50 / p99 ms, whole run):"
while read -r name o50 o99; do echo "  $name $o50 / $o99"; done < "$WORK/overhead"
