#!/usr/bin/env bash
# Checks the facade `ai-metering` with no default features and with each backend feature
# alone, and that a build without a backend compiles neither sea-orm nor sqlx.
# Exits non-zero when any step fails.
set -euo pipefail
cd "$(dirname "$0")/.."

for features in "" "sqlite" "postgres" "dashboard" "billing" "metrics"; do
  echo "== cargo check -p ai-metering --no-default-features --features '${features}'"
  cargo check -p ai-metering --no-default-features --features "${features}"
done

echo "== cargo check -p ai-metering-seaorm with each backend alone"
cargo check -p ai-metering-seaorm --no-default-features --features sqlite
cargo check -p ai-metering-seaorm --no-default-features --features postgres

echo "== no sea-orm or sqlx without a backend feature"
if cargo tree -p ai-metering --no-default-features -e normal --prefix none \
  | grep -E '^(sea-orm|sqlx)'; then
  echo "error: ai-metering --no-default-features still builds the crates above" >&2
  exit 1
fi

echo "== no aws-lc-sys anywhere (rustls uses ring)"
if cargo tree --workspace -i aws-lc-sys >/dev/null 2>&1; then
  cargo tree --workspace -i aws-lc-sys >&2
  echo "error: aws-lc-sys is back in the dependency tree" >&2
  exit 1
fi
echo "ok"
