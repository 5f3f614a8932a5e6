#!/usr/bin/env bash
# The README's websocat walkthrough, non-interactively: log in with curl,
# then a message typed into websocat reaches a second client.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/lib.sh
command -v websocat >/dev/null || cargo install websocat --locked

work=$(mktemp -d)
trap 'kill ${SERVER_PID:-} $(jobs -p) 2>/dev/null || true' EXIT
start_server "$work/server.log"
base="http://$ADDR"

login() { # login NAME COOKIEFILE -> the session token
  local key
  key=$(curl -s -X POST -d "{\"username\":\"$1\"}" "$base/api/register" \
        | sed 's/.*"key":"\([0-9a-f]*\)".*/\1/')
  curl -s -c "$2" -X POST -d "{\"key\":\"$key\"}" "$base/api/login" >/dev/null
  awk '$6 == "session" {print $7}' "$2"
}
alice=$(login alice "$work/alice.cookies")
bob=$(login bob "$work/bob.cookies")

# Bob listens; his stdin stays open so websocat keeps the socket.
tail -f /dev/null | websocat "ws://$ADDR/ws" -H "Cookie: session=$bob" >"$work/bob.out" &
wait_file_has "$work/server.log" "ws open user=bob" 10 || { echo "bob did not connect"; exit 1; }

# Alice types a line, as in the README.
( echo '{"message":"hi"}'; tail -f /dev/null ) \
  | websocat "ws://$ADDR/ws" -H "Cookie: session=$alice" >"$work/alice.out" &
ok=0
wait_file_has "$work/bob.out" '{"message":"hi","author":"alice",' 10 && ok=$((ok + 1))
wait_file_has "$work/alice.out" '{"status":true,' 10 && ok=$((ok + 1))
echo "bob got:   $(cat "$work/bob.out")"
echo "alice got: $(cat "$work/alice.out")"
echo "websocat: $ok passed, $((2 - ok)) failed"
[ $ok -eq 2 ]
