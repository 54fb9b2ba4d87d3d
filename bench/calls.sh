#!/usr/bin/env bash
# The call benchmark: vpbx's engine against Asterisk's own dialplan on the sandbox Asterisk, with sipp as the caller.
# Prints call setup (INVITE -> 200 OK) median/p99, the max sustained call rate with 0 failures, and 500 calls parked in
# an IVR (engine RSS, none lost). Usage (as root): bench/calls.sh [--quick] [--json FILE] [...]   (bench/calls.py -h)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${VPBX_PYTHON:-$REPO/.venv/bin/python}"
[[ -x "$PYTHON" ]] || PYTHON=python3
command -v sipp >/dev/null || { echo "Error: sipp is not installed (apt-get install sip-tester)" >&2; exit 1; }
exec "$PYTHON" "$REPO/bench/calls.py" "$@"
