#!/usr/bin/env bash
# The README's "Operating the chat" section, as printed: every sh block of
# the section, in order, in one shell from the checkout, against a fresh
# server started with `--admins root` (only the address is changed). The
# comment lines right after a command are its expected output, line by
# line; `<...>` in them (`<ts>`, `<64 hex digits>`) stands for any text.
# A comment that does not follow a command explains and is skipped. Any
# difference fails.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/lib.sh

work=$(mktemp -d)
trap 'kill ${SERVER_PID:-} 2>/dev/null || true; rm -f admin.key' EXIT
start_server "$work/server.log" --admins root
README=$PWD/README.md
section="## Operating the chat"

script=""
for n in $(seq 1 50); do
  block=$(readme_block "$section" "$n")
  [ -n "$block" ] || break
  # A block ends what its last command expects.
  script+="$block"$'\n'":end-of-block:"$'\n'
done
[ -n "$script" ] || { echo "README section not found"; exit 1; }

# A glob of an expected line: literal, except `<...>` for any text.
pattern() {
  local p=$1
  p=${p//\\/\\\\}
  p=${p//\*/\\*}
  p=${p//\?/\\?}
  p=${p//\[/\\[}
  p=${p//\]/\\]}
  sed 's/<[^>]*>/*/g' <<<"$p"
}

checked=0
fail=0
# Compares the last command's output with the comment lines after it.
compare() {
  [ -n "${command:-}" ] || return 0
  if [ -n "$want" ] || [ -s "$work/out" ]; then
    local got
    got=$(cat "$work/out")
    local -a g w
    mapfile -t g <<<"$got"
    mapfile -t w <<<"${want%$'\n'}"
    if [ "${#g[@]}" -ne "${#w[@]}" ]; then
      echo "FAILED: $command"
      echo "  expected: ${want%$'\n'}"
      echo "  got:      $got"
      fail=1
    else
      for i in "${!w[@]}"; do
        local pat
        pat=$(pattern "${w[$i]}")
        # shellcheck disable=SC2053 # the pattern is a glob on purpose
        if [[ ${g[$i]} == $pat ]]; then
          echo "ok:     ${g[$i]}"
        else
          echo "FAILED: expected ${w[$i]}"
          echo "        got      ${g[$i]}"
          fail=1
        fi
      done
    fi
    checked=$((checked + 1))
  fi
  command=""
  want=""
}

command=""
want=""
pending=""
while IFS= read -r line; do
  # Continuation lines join the command they continue.
  if [ -n "$pending" ]; then
    line="$pending$line"
    pending=""
  fi
  if [[ $line == *\\ ]]; then
    pending="${line%\\}"
    continue
  fi
  case "$line" in
    '#'*)
      if [ -n "$command" ]; then
        want+="${line#\# }"$'\n'
      fi
      ;;
    '' ) ;;
    ':end-of-block:') compare ;;
    *)
      compare
      command=$line
      # In this shell, not a subshell: the blocks set variables.
      eval "$line" >"$work/out"
      ;;
  esac
done <<<"$script"
compare

echo "operating the chat: $checked outputs checked, $([ $fail -eq 0 ] && echo all matched || echo some differ)"
exit $fail
