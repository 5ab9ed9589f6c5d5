#!/usr/bin/env bash
# Times the first build a new user waits for: a clean `cargo build --release -p
# ai-metering-cli` of two commits, one after the other in one run, each in a fresh worktree
# and target directory. The crates are fetched before the clocks start (downloads are not
# timed). Prints a Markdown table with the two times and their ratio.
#
#   scripts/first-build.sh                      # BEFORE=9afacdb (reqwest on aws-lc) vs HEAD
#   BEFORE=<rev> AFTER=<rev> scripts/first-build.sh
#
# Run it on an otherwise idle machine: both builds use every core.
set -euo pipefail
cd "$(dirname "$0")/.."

BEFORE="${BEFORE:-9afacdb}"
AFTER="${AFTER:-HEAD}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/first-build.XXXXXX")"

cleanup() {
    for name in before after; do
        git worktree remove --force "$WORK/$name" >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

declare -A REV SECONDS_TAKEN
REV[before]="$(git rev-parse --short "$BEFORE")"
REV[after]="$(git rev-parse --short "$AFTER")"

for name in before after; do
    git worktree add --detach "$WORK/$name" "${REV[$name]}" >/dev/null 2>&1
    (cd "$WORK/$name" && cargo fetch --locked >/dev/null 2>&1)
done

for name in before after; do
    echo "== clean release build of ${REV[$name]} ($name)" >&2
    start="$(date +%s)"
    (cd "$WORK/$name" && CARGO_TARGET_DIR="$WORK/$name-target" \
        cargo build --release --locked -p ai-metering-cli >&2)
    SECONDS_TAKEN[$name]=$(($(date +%s) - start))
    rm -rf "$WORK/$name-target"
done

echo
echo "| commit | clean \`cargo build --release -p ai-metering-cli\` |"
echo "|---|---|"
for name in before after; do
    echo "| ${REV[$name]} ($name) | ${SECONDS_TAKEN[$name]} s |"
done
awk -v b="${SECONDS_TAKEN[before]}" -v a="${SECONDS_TAKEN[after]}" \
    'BEGIN { printf "\nafter / before: %.2f\n", a / b }'
