#!/usr/bin/env bash
# The README's rooms walkthrough ("Rooms with curl and websocat"),
# non-interactively and as printed: its three blocks are taken from
# README.md (only the address is changed to this server's) and run in
# order in one shell, Dave's websocat in the background, so the README
# cannot drift from what works.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/lib.sh
command -v websocat >/dev/null || cargo install websocat --locked

work=$(mktemp -d)
trap 'kill ${SERVER_PID:-} $(jobs -p) 2>/dev/null || true' EXIT
start_server "$work/server.log"
README=$PWD/README.md
section="## Rooms with curl and websocat"

cd "$work"
curl_block=$(readme_block "$section" 1)
dave_block=$(readme_block "$section" 2)
carol_block=$(readme_block "$section" 3)
[ -n "$curl_block" ] && [ -n "$dave_block" ] && [ -n "$carol_block" ] \
  || { echo "README blocks not found"; exit 1; }
eval "$curl_block" >curl.out
# Dave listens; his stdin stays open so websocat keeps the socket.
tail -f /dev/null | eval "$dave_block" >dave.out &
wait_file_has server.log 'ws open user="dave"' 10 || { echo "dave did not connect"; exit 1; }
# In Carol's block, the JSON lines are what she types.
run_typing "$carol_block" carol.out
check "carol creates the room" curl.out '{"name":"rust"}'
check "dave sees it joined" curl.out '{"name":"rust","private":false,"members":2,"joined":true,"role":"member","unread":0,"last_id":2}'
check "dave gets the room message" dave.out '{"message":"hello rust","author":"carol","id":3,'
check "dave gets the direct message" dave.out '"to":"dave"}'
check "carol's acks" carol.out '{"status":true,"id":4}'
echo "curl:      $(tr '\n' ' ' <curl.out)"
echo "dave got:  $(tr '\n' ' ' <dave.out)"
echo "carol got: $(tr '\n' ' ' <carol.out)"
echo "websocat rooms: $ok passed, $((5 - ok)) failed"
[ $ok -eq 5 ]
