#!/usr/bin/env bash
# Measure `vpbx --help` wall time (cold-ish start of the console script) and print the median.
# Uses hyperfine when installed, else a Python timing loop. Usage: bench/cli_startup.sh [RUNS]  (default 30)
# VPBX=/path/to/vpbx overrides the console script (default: the checkout's .venv, else the one on PATH).
set -euo pipefail

RUNS="${1:-30}"
VPBX="${VPBX:-}"
if [[ -z "$VPBX" ]]; then
    REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    for candidate in "$REPO/.venv/bin/vpbx" /var/cache/vpbx/venv/bin/vpbx "$(command -v vpbx || true)"; do
        if [[ -n "$candidate" && -x "$candidate" ]]; then VPBX="$candidate"; break; fi
    done
fi
[[ -x "$VPBX" ]] || { echo "Error: vpbx console script not found; set VPBX=/path/to/vpbx" >&2; exit 1; }
unset VPBX_CONFIG VPBX_DB

if command -v hyperfine >/dev/null 2>&1; then
    json="$(mktemp)"
    trap 'rm -f "$json"' EXIT
    hyperfine --warmup 3 --runs "$RUNS" --export-json "$json" --style none "$VPBX --help" >/dev/null
    python3 - "$json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print(f"vpbx --help: median {r['median'] * 1000:.0f} ms (min {r['min'] * 1000:.0f} ms, max {r['max'] * 1000:.0f} ms, "
      f"{len(r['times'])} runs, hyperfine)")
PY
else
    python3 - "$VPBX" "$RUNS" <<'PY'
import statistics, subprocess, sys, time
vpbx, runs = sys.argv[1], int(sys.argv[2])
for _ in range(3):  # warm-up: page cache, .pyc files
    subprocess.run([vpbx, "--help"], stdout=subprocess.DEVNULL, check=True)
times = []
for _ in range(runs):
    t0 = time.perf_counter()
    subprocess.run([vpbx, "--help"], stdout=subprocess.DEVNULL, check=True)
    times.append(time.perf_counter() - t0)
print(f"vpbx --help: median {statistics.median(times) * 1000:.0f} ms (min {min(times) * 1000:.0f} ms, "
      f"max {max(times) * 1000:.0f} ms, {runs} runs, python timing loop)")
PY
fi
