#!/usr/bin/env bash
# Runs the cargo-fuzz targets, TWO at a time, each for FUZZ_SECONDS (default 600), at nice 19;
# logs in fuzz/logs/<target>.log (last line: libFuzzer's "Done N runs in S second(s)").
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECS="${FUZZ_SECONDS:-600}"
mkdir -p logs
export RUSTC_BOOTSTRAP=1
run() {
    local target="$1"; shift
    mkdir -p "corpus/$target"
    nice -n 19 cargo fuzz run "$@" "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$SECS" -print_final_stats=1 > "logs/$target.log" 2>&1 || echo "$target: FAILED (see fuzz/logs/$target.log)"
}
run usage_extraction & run sse_accumulator & wait
run config_parsing & run webhook_payload --features webhook & wait
grep -H -E "^Done|stat::number_of_executed_units|crash|panicked" logs/*.log || true
