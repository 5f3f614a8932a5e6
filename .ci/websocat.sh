#!/usr/bin/env bash
# The README's curl and websocat walkthrough, non-interactively and as
# printed: the blocks are taken from README.md (only the address is
# changed to this server's) and run in order in one shell, so the README
# cannot drift from what works. A second client, bob, checks that the
# message typed into websocat reaches others.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/lib.sh
command -v websocat >/dev/null || cargo install websocat --locked

work=$(mktemp -d)
trap 'kill ${SERVER_PID:-} $(jobs -p) 2>/dev/null || true' EXIT
start_server "$work/server.log"
base="http://$ADDR"
README=$PWD/README.md

login() { # login NAME COOKIEFILE -> the session token
  local key
  key=$(curl -s -X POST -d "{\"username\":\"$1\"}" "$base/api/register" \
        | sed 's/.*"key":"\([0-9a-f]*\)".*/\1/')
  curl -s -c "$2" -X POST -d "{\"key\":\"$key\"}" "$base/api/login" >/dev/null
  awk '$6 == "session" {print $7}' "$2"
}
bob=$(login bob "$work/bob.cookies")

# Bob listens; his stdin stays open so websocat keeps the socket.
tail -f /dev/null | websocat "ws://$ADDR/ws" -H "Cookie: session=$bob" >"$work/bob.out" &
wait_file_has "$work/server.log" 'ws open user="bob"' 10 || { echo "bob did not connect"; exit 1; }

# Alice follows the README from here, in its own directory (the cookie
# file is `cookies` in the working directory).
cd "$work"
curl_block=$(readme_block "## Try it with curl" 1)
ws_block=$(readme_block "## Chat with websocat" 1)
logout_block=$(readme_block "## Chat with websocat" 2)
[ -n "$curl_block" ] && [ -n "$ws_block" ] && [ -n "$logout_block" ] \
  || { echo "README blocks not found"; exit 1; }
eval "$curl_block" >curl.out
run_typing "$ws_block" alice.out
check "register and log in" curl.out '{"username":"alice"}'
check "who am I" curl.out '{"username":"alice","online":'
check "bob receives alice's message" bob.out '{"message":"hi","author":"alice",'
check "alice's ack" alice.out '{"status":true,'
eval "$logout_block" >logout.out
check "log out" logout.out '{}'
echo "curl:      $(tr '\n' ' ' <curl.out)"
echo "bob got:   $(cat bob.out)"
echo "alice got: $(cat alice.out)"
echo "websocat: $ok passed, $((5 - ok)) failed"
[ $ok -eq 5 ]
