# Shared helpers for the CI scripts (sourced, not run).

# start_server LOG [flags...]: starts target/release/piratchat on a free
# loopback port with a fresh database; sets SERVER_PID and ADDR. It reads
# the address from the start-up line, which is logged at info level, so
# do not pass a quieter --log-level. The caller's EXIT trap should kill
# $SERVER_PID; on failure it is killed here.
start_server() {
  local log=$1
  shift
  local dir
  dir=$(mktemp -d)
  ./target/release/piratchat --listen 127.0.0.1:0 --db "$dir/ci.db" "$@" 2>"$log" &
  SERVER_PID=$!
  ADDR=""
  for _ in $(seq 1 200); do
    ADDR=$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$log" | head -n 1)
    [ -n "$ADDR" ] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "server did not start:" >&2
  cat "$log" >&2
  kill "$SERVER_PID" 2>/dev/null || true
  return 1
}

# wait_file_has FILE TEXT SECONDS: polls until FILE contains TEXT.
wait_file_has() {
  local end=$((SECONDS + $3))
  while [ $SECONDS -lt $end ]; do
    grep -qF -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# readme_block HEADING N: the Nth sh block of the README.md section
# HEADING, pointed at the server in $ADDR (run from the checkout's root).
readme_block() {
  awk -v h="$1" -v n="$2" '
    $0 == h { in_section = 1; next }
    in_section && /^## / { exit }
    in_section && $0 == "```sh" { k++; if (k == n) { on = 1; next } }
    on && $0 == "```" { exit }
    on { print }' "$README" | sed "s#127\.0\.0\.1:7777#$ADDR#g"
}

# run_typing BLOCK OUT: runs a websocat block in the background; its JSON
# lines are what the user types, and stdin stays open afterwards so
# websocat keeps the socket.
run_typing() {
  local commands typed
  commands=$(grep -v '^{' <<<"$1")
  typed=$(grep '^{' <<<"$1")
  ( echo "$typed"; tail -f /dev/null ) | eval "$commands" >"$2" &
}

# check WHAT FILE TEXT: counts a pass in $ok when FILE holds TEXT within
# 10 s, else says what failed.
ok=0
check() {
  if wait_file_has "$2" "$3" 10; then ok=$((ok + 1)); else echo "FAILED: $1"; fi
}
