#!/usr/bin/env bash
# Browser end-to-end test: Debian's Chromium, headless, driven by
# playwright-core (tests/e2e/browser.mjs) against a fresh piratchat.
# Installs what is missing: chromium (apt, as root), playwright-core (npm, the
# version pinned in tests/e2e/package-lock.json). The screenshots land in
# target/e2e/.
#
# Needs target/release/piratchat (or $PIRATCHAT_BIN) and node.
set -euo pipefail
cd "$(dirname "$0")/.."

fail_setup() {
    echo "e2e-browser: $*" >&2
    echo "0 passed, 1 failed"
    exit 1
}

BIN=${PIRATCHAT_BIN:-target/release/piratchat}
[ -x "$BIN" ] || fail_setup "$BIN not found: run cargo build --release first"

apt_install() {
    [ "$(id -u)" = 0 ] || fail_setup "$* missing and not root: apt-get install $*"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "$@" >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null && apt-get install -y -q "$@" >/dev/null; } ||
        fail_setup "could not install $*"
}
[ -x /usr/bin/chromium ] || apt_install chromium
command -v node >/dev/null || apt_install nodejs npm
[ -d tests/e2e/node_modules/playwright-core ] ||
    npm ci --prefix tests/e2e --no-audit --no-fund --loglevel=error >/dev/null ||
    fail_setup "npm ci failed"

tmp=$(mktemp -d /tmp/piratchat-e2e-browser.XXXXXX)
pids=()
cleanup() {
    local rc=$?
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ "${E2E_KEEP:-0}" = 1 ]; then echo "e2e-browser: kept $tmp" >&2; else rm -rf "$tmp"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The admin of the moderation checks: a fresh name, registered by the test.
ADMIN_NAME=admin$(python3 -c 'import secrets; print(secrets.token_hex(3))')
"$BIN" --listen "127.0.0.1:$PORT" --db "$tmp/chat.db" --admins "$ADMIN_NAME" 2>"$tmp/server.log" &
pids+=($!)
# Poll /healthz until the server answers, within a deadline.
deadline=$((SECONDS + 10))
until curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || { tail -n 20 "$tmp/server.log" >&2; fail_setup "piratchat did not start"; }
    sleep 0.1
done

rc=0
BASE_URL="http://127.0.0.1:$PORT/" ADMIN_NAME="$ADMIN_NAME" SCREENSHOT_DIR=target/e2e \
    node tests/e2e/browser.mjs | tee "$tmp/result" || rc=$?
if [ "$rc" != 0 ]; then
    echo "--- piratchat log (last 40 lines)" >&2
    tail -n 40 "$tmp/server.log" >&2
    tail -n 1 "$tmp/result"   # the summary stays the last line
fi
exit "$rc"
