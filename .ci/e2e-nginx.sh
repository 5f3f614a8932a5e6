#!/usr/bin/env bash
# End-to-end test of the deployment path: piratchat behind deploy/nginx.conf
# with TLS, everything on loopback. deploy/nginx.conf is changed only in its
# listen ports (bound to loopback), certificate paths and upstream address;
# a small wrapper supplies what /etc/nginx/nginx.conf would (http {}, pid,
# logs, temp paths) inside a temporary directory, so no system path is used.
#
# Needs target/release/piratchat (or $PIRATCHAT_BIN), nginx, openssl, python3.
# Env: E2E_IDLE=<seconds> also holds a WebSocket idle that long through nginx
#      (over 75 to prove the pings beat nginx's read timeout);
#      E2E_KEEP=1 keeps the temporary directory for inspection.
set -euo pipefail
cd "$(dirname "$0")/.."

fail_setup() {
    echo "e2e-nginx: $*" >&2
    echo "0 passed, 1 failed"
    exit 1
}

BIN=${PIRATCHAT_BIN:-target/release/piratchat}
[ -x "$BIN" ] || fail_setup "$BIN not found: run cargo build --release first"

if ! command -v nginx >/dev/null || ! command -v openssl >/dev/null; then
    [ "$(id -u)" = 0 ] || fail_setup "nginx and openssl are needed (apt-get install nginx openssl)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q nginx openssl >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null && apt-get install -y -q nginx openssl >/dev/null; } ||
        fail_setup "could not install nginx"
fi
command -v python3 >/dev/null || fail_setup "python3 is needed"

tmp=$(mktemp -d /tmp/piratchat-e2e-nginx.XXXXXX)
pids=()
cleanup() {
    local rc=$?
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ "${E2E_KEEP:-0}" = 1 ]; then echo "e2e-nginx: kept $tmp" >&2; else rm -rf "$tmp"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port the kernel reports free right now on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Polls until a TCP port accepts connections or the deadline passes.
wait_port() {
    python3 - "$1" "$2" <<'EOF'
import socket, sys, time
port, deadline = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
EOF
}

show_logs() {
    echo "--- piratchat log (last 40 lines)" >&2
    tail -n 40 "$tmp/server.log" >&2 || true
    echo "--- nginx error log (last 20 lines)" >&2
    tail -n 20 "$tmp/nginx/error.log" >&2 || true
}

# ---- a self-signed certificate for 127.0.0.1 ---------------------------------
mkdir -p "$tmp/tls" "$tmp/nginx"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$tmp/tls/privkey.pem" -out "$tmp/tls/fullchain.pem" 2>/dev/null ||
    fail_setup "openssl could not make a certificate"

# ---- piratchat ---------------------------------------------------------------
UP=$(free_port)
"$BIN" --listen "127.0.0.1:$UP" --db "$tmp/chat.db" 2>"$tmp/server.log" &
pids+=($!)
wait_port "$UP" 10 || { show_logs; fail_setup "piratchat did not start on port $UP"; }

# ---- nginx with deploy/nginx.conf ----------------------------------------------
HTTP_PORT=$(free_port)
HTTPS_PORT=$(free_port)
# Bind the IPv6 listeners to ::1 where the machine has IPv6 loopback, drop
# them where it has none (nginx would refuse to start).
if python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
    v6_80="s/listen \[::\]:80;/listen [::1]:$HTTP_PORT;/"
    v6_443="s/listen \[::\]:443 ssl;/listen [::1]:$HTTPS_PORT ssl;/"
else
    v6_80='/listen \[::\]:80;/d'
    v6_443='/listen \[::\]:443 ssl;/d'
fi
sed -e "s/listen 80;/listen 127.0.0.1:$HTTP_PORT;/" \
    -e "s/listen 443 ssl;/listen 127.0.0.1:$HTTPS_PORT ssl;/" \
    -e "$v6_80" -e "$v6_443" \
    -e "s|/etc/letsencrypt/live/chat.example.org/|$tmp/tls/|g" \
    -e "s/127\.0\.0\.1:7777/127.0.0.1:$UP/g" \
    deploy/nginx.conf >"$tmp/nginx/site.conf"

user_line=""
[ "$(id -u)" = 0 ] && user_line="user root;"  # workers may then read the 0700 temp dir
cat >"$tmp/nginx/nginx.conf" <<EOF
# What /etc/nginx/nginx.conf provides on a server, kept inside $tmp.
$user_line
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log notice;
events { worker_connections 256; }
http {
    access_log $tmp/nginx/access.log;
    client_body_temp_path $tmp/nginx/client_body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    include $tmp/nginx/site.conf;
}
EOF
nginx_cmd=(nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log")
"${nginx_cmd[@]}" -t -q || { show_logs; fail_setup "nginx rejected the rendered configuration"; }
"${nginx_cmd[@]}" -g 'daemon off;' &
pids+=($!)
wait_port "$HTTPS_PORT" 10 || { show_logs; fail_setup "nginx did not start"; }

# ---- the checks ----------------------------------------------------------------
rc=0
python3 tests/e2e/nginx_e2e.py --https-port "$HTTPS_PORT" --http-port "$HTTP_PORT" \
    --direct-port "$UP" --ca "$tmp/tls/fullchain.pem" \
    --server-log "$tmp/server.log" --nginx-log "$tmp/nginx/access.log" \
    --idle "${E2E_IDLE:-0}" | tee "$tmp/result" || rc=$?
if [ "$rc" != 0 ]; then
    show_logs
    tail -n 1 "$tmp/result"   # the summary stays the last line
fi
exit "$rc"
