#!/usr/bin/env bash
# Browser test of the dashboard: headless Chromium loads the overview of a seeded store
# (the `seeded` example), the daily chart must be in the DOM with at least one bar, and the
# screenshot must not be blank. Installs Debian's `chromium` when it is missing.
#
# Usage: crates/ai-metering-dashboard/tests/browser/run.sh
# The screenshot and DOM are kept in $OUT_DIR (default: target/browser-test).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"
cd "$root"
out_dir="${OUT_DIR:-$root/target/browser-test}"
mkdir -p "$out_dir"

fail() {
  echo "browser test FAILED: $*" >&2
  exit 1
}

if ! command -v chromium >/dev/null 2>&1; then
  echo "== installing chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
command -v chromium >/dev/null 2>&1 || fail "chromium is not installed"
command -v python3 >/dev/null 2>&1 || fail "python3 is needed to check the screenshot"

echo "== building the seeded example"
cargo build -q -p ai-metering-dashboard --example seeded
target_dir="${CARGO_TARGET_DIR:-$root/target}"
server_bin="$target_dir/debug/examples/seeded"
[ -x "$server_bin" ] || fail "example binary not found at $server_bin"

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== starting the server"
"$server_bin" 0 >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
url=""
for _ in $(seq 1 100); do
  if line="$(grep -m1 '^listening on ' "$work/server.out" 2>/dev/null)"; then
    url="${line#listening on }"
    break
  fi
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.err" >&2; fail "the server exited"; }
  sleep 0.1
done
[ -n "$url" ] || fail "the server did not print its address"
echo "overview at $url"

chrome() {
  timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --disable-dev-shm-usage --hide-scrollbars \
    --user-data-dir="$(mktemp -d -p "$work")" "$@" 2>>"$work/chromium.err"
}

echo "== loading the overview"
chrome --dump-dom "$url" >"$out_dir/overview.html" || { tail -20 "$work/chromium.err" >&2; fail "chromium --dump-dom failed"; }
chrome --window-size=1280,900 --screenshot="$out_dir/overview.png" "$url" >/dev/null \
  || { tail -20 "$work/chromium.err" >&2; fail "chromium --screenshot failed"; }

echo "== checking the DOM and the screenshot"
python3 - "$out_dir/overview.html" "$out_dir/overview.png" <<'PY'
import re, struct, sys, zlib

dom_path, png_path = sys.argv[1], sys.argv[2]
dom = open(dom_path, encoding="utf-8").read()
svg = re.search(r'<svg[^>]*class="chart"[^>]*>(.*?)</svg>', dom, re.S)
if not svg:
    sys.exit("the chart's <svg> is not in the DOM")
bars = re.findall(r'<rect[^>]*class="bar"[^>]*height="(\d+)"', svg.group(1))
if not bars or not any(int(h) > 0 for h in bars):
    sys.exit("the chart has no bar")
if "<h1>Overview</h1>" not in dom:
    sys.exit("the overview heading is missing")
print(f"chart: {len(bars)} bars")

def pixels(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit("the screenshot is not a PNG")
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = ihdr
    channels = {2: 3, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace != 0:
        sys.exit(f"unexpected PNG format: depth {depth}, colour type {colour}")
    raw = zlib.decompress(idat)
    stride = width * channels
    prev = bytearray(stride)
    rows = []
    for y in range(height):
        base = y * (stride + 1)
        kind, line = raw[base], bytearray(raw[base + 1:base + 1 + stride])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, channels, rows

width, height, channels, rows = pixels(png_path)
colours, background, total = set(), 0, 0
for line in rows:
    for x in range(0, len(line), channels):
        px = line[x:x + 3]
        colours.add(px)
        total += 1
        if px == b"\xff\xff\xff":
            background += 1
print(f"screenshot: {width}x{height}, {len(colours)} colours, {100 * (total - background) // total}% not white")
if len(colours) < 16:
    sys.exit("the screenshot looks blank (too few colours)")
if total - background < total // 50:
    sys.exit("the screenshot looks blank (almost all white)")
PY
echo "browser test passed (screenshot: $out_dir/overview.png)"
