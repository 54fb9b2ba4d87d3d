# Shared setup for scripts/quickstart and scripts/test: system packages, the project venv. Sourced, not run.
# Rule: idempotent; everything the project needs is installed from Debian's packages and PyPI by these functions.
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VPBX_VENV:-$REPO/.venv}"
export VPBX_ASTERISK_ROOT="${VPBX_ASTERISK_ROOT:-/var/cache/vpbx/rootfs}"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

ensure_system_packages() {
    local missing=()
    command -v sipp >/dev/null || missing+=(sip-tester)
    command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
    command -v nft >/dev/null || missing+=(nftables)          # the tests' NAT router namespace
    command -v openssl >/dev/null || missing+=(openssl)       # the tests' TLS certificates
    command -v systemd-analyze >/dev/null || missing+=(systemd)   # the tests verify the shipped units
    if ((${#missing[@]})); then
        log "installing ${missing[*]} (apt)"
        apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
    fi
}

ensure_venv() {
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "creating $VENV"
        python3 -m venv "$VENV"
    fi
    if ! "$VENV/bin/python" -c "import vpbx, tomlkit, pytest, hypothesis, aiosmtpd, mypy, pjsua2" 2>/dev/null \
        || [[ ! -x "$VENV/bin/ruff" ]] \
        || [[ "$REPO/setup.cfg" -nt "$VENV/.vpbx-installed" ]]; then
        log "installing vpbx and its dependencies into $VENV"
        "$VENV/bin/pip" install -q --disable-pip-version-check -e "$REPO[test]"
        touch "$VENV/.vpbx-installed"
    fi
    export PATH="$VENV/bin:$PATH"
}
