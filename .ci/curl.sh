#!/usr/bin/env bash
# The README's "Chat with curl only" section, as printed: every sh block
# of the section, in order, in one shell against a fresh server (only the
# address is changed). Each command that prints is compared with the
# `# {...}` comment lines that follow it in the README, in order: the
# output must match exactly, where `...` in the comment stands for any
# text (ids, times, keys). Any difference, or a different number of
# outputs, fails.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/lib.sh

work=$(mktemp -d)
trap 'kill ${SERVER_PID:-} $(jobs -p) 2>/dev/null || true' EXIT
start_server "$work/server.log"
README=$PWD/README.md
section="## Chat with curl only"

script=""
for n in $(seq 1 50); do
  block=$(readme_block "$section" "$n")
  [ -n "$block" ] || break
  script+="$block"$'\n'
done
[ -n "$script" ] || { echo "README section not found"; exit 1; }

# A glob of an expected line: literal, except `...` for any text.
pattern() {
  local p=$1
  p=${p//\\/\\\\}
  p=${p//\*/\\*}
  p=${p//\?/\\?}
  p=${p//\[/\\[}
  p=${p//\]/\\]}
  printf '%s' "${p//.../*}"
}

cd "$work"
expected=()
outputs=()
while IFS= read -r line; do
  case "$line" in
    '# {'* | '# ['*) expected+=("${line#\# }") ;;
    '#'* | '') ;;
    *)
      # In this shell, not a subshell: the blocks set variables.
      eval "$line" >"$work/out"
      out=$(cat "$work/out")
      [ -z "$out" ] || outputs+=("$out")
      ;;
  esac
done <<<"$script"

fail=0
if [ ${#outputs[@]} -ne ${#expected[@]} ]; then
  echo "FAILED: ${#outputs[@]} outputs for ${#expected[@]} expected lines"
  fail=1
fi
for i in "${!expected[@]}"; do
  got=${outputs[$i]:-<nothing>}
  pat=$(pattern "${expected[$i]}")
  # shellcheck disable=SC2053 # the pattern is a glob on purpose
  if [[ $got == $pat ]]; then
    echo "ok:     $got"
  else
    echo "FAILED: expected ${expected[$i]}"
    echo "        got      $got"
    fail=1
  fi
done
echo "curl only: ${#expected[@]} outputs checked, $([ $fail -eq 0 ] && echo all matched || echo some differ)"
exit $fail
