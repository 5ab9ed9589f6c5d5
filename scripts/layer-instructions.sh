#!/usr/bin/env bash
# What the QuotaLayer adds to a request in process, in instructions (callgrind), for two
# commits built and counted in one run, beside the peer rate limiter tower-governor. The
# layer's bench routers (crates/ai-metering-tower/benches/support) are driven by the
# `layer_requests` bench binary, and callgrind counts only its request loop
# (`--toggle-collect`): each router is run with two request counts, and one request is the
# difference of the two totals divided by the difference of the counts. Instruction counts
# repeat exactly from run to run, unlike timings on this machine.
#
#   scripts/layer-instructions.sh                  # BEFORE=HEAD~1 vs the working tree
#   BEFORE=<rev> scripts/layer-instructions.sh
#   PRELOAD=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2 scripts/layer-instructions.sh
#                                                  # with another malloc (apt-get install libmimalloc2.0)
#
# The older commit is measured with today's harness (benches/support and
# layer_requests.rs copied into its worktree, with tower-governor as a dev-dependency), so
# it must have the public API the harness uses. Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."

BEFORE="${BEFORE:-HEAD~1}"
SMALL="${SMALL:-200}"
LARGE="${LARGE:-1200}"
ROUTERS=(bare quota_layer_cached quota_layer_cached_original quota_layer_cached_ietf
    quota_layer_cached_no_headers tower_governor)
WORK="$(mktemp -d "${TMPDIR:-/tmp}/layer-instructions.XXXXXX")"
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }

cleanup() {
    git worktree remove --force "$WORK/before" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# Builds the bench binary of the tree at $1 and prints its path.
build() {
    (cd "$1" && cargo bench -p ai-metering-tower --bench layer_requests --no-run \
        --message-format=json 2>/dev/null) |
        python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "layer_requests":
        print(m["executable"])'
}

# Total instructions of one run: $1 binary, $2 router, $3 count. With PRELOAD, the binary
# runs with that library preloaded (another malloc); the last process's count is its own.
instructions() {
    if [[ -n "${PRELOAD:-}" ]]; then
        valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$WORK/cg.%p.out" \
            --toggle-collect='*layer_requests::drive*' env LD_PRELOAD="$PRELOAD" "$1" "$2" "$3" 2>&1
    else
        valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" \
            --toggle-collect='*layer_requests::drive*' "$1" "$2" "$3" 2>&1
    fi | sed -n 's/.*Collected : \([0-9]*\).*/\1/p' | tail -n 1
}

git worktree add --detach "$WORK/before" "$BEFORE" >/dev/null 2>&1
tower=crates/ai-metering-tower
cp -r "$tower/benches/support" "$tower/benches/layer_requests.rs" "$WORK/before/$tower/benches/"
if ! grep -q '^tower_governor' "$WORK/before/$tower/Cargo.toml"; then
    line="$(grep '^tower_governor' "$tower/Cargo.toml")"
    sed -i "/^\[dev-dependencies\]/a $line" "$WORK/before/$tower/Cargo.toml"
fi
if ! grep -q 'name = "layer_requests"' "$WORK/before/$tower/Cargo.toml"; then
    printf '\n[[bench]]\nname = "layer_requests"\nharness = false\n' >> "$WORK/before/$tower/Cargo.toml"
fi

echo "building $(git rev-parse --short "$BEFORE") and the working tree" >&2
declare -A BIN
BIN[before]="$(CARGO_TARGET_DIR="$WORK/target-before" build "$WORK/before")"
BIN[after]="$(build .)"
for name in before after; do
    [[ -x "${BIN[$name]}" ]] || { echo "the $name build failed" >&2; exit 1; }
done

declare -A PER
for name in before after; do
    for router in "${ROUTERS[@]}"; do
        small="$(instructions "${BIN[$name]}" "$router" "$SMALL")"
        large="$(instructions "${BIN[$name]}" "$router" "$LARGE")"
        PER[$name/$router]=$(((large - small) / (LARGE - SMALL)))
    done
done

echo
echo "| per request (instructions) | $(git rev-parse --short "$BEFORE") | working tree |"
echo "|---|---|---|"
for router in "${ROUTERS[@]}"; do
    echo "| \`$router\` | ${PER[before/$router]} | ${PER[after/$router]} |"
done
for router in "${ROUTERS[@]:1}"; do
    echo "| what the layer adds (\`$router\` - \`bare\`) | $((PER[before/$router] - PER[before/bare])) | $((PER[after/$router] - PER[after/bare])) |"
done
