#!/usr/bin/env bash
# The Autobahn WebSocket conformance cases (through kosoku, a Python runner
# of the Autobahn case files) against /echo, compression cases excluded.
# Fails unless every case is OK, NON-STRICT or INFORMATIONAL.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/lib.sh

venv=target/ci-venv
[ -x "$venv/bin/kosoku" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q kosoku==0.1.0; }

trap 'kill ${SERVER_PID:-} 2>/dev/null || true' EXIT
start_server target/autobahn-server.log --echo-endpoint
rm -rf target/autobahn
"$venv/bin/kosoku" "ws://$ADDR/echo" -x '12.*' -x '13.*' -p 4 -o target/autobahn | tail -n 3

python3 - <<'PY'
import json, collections, sys
index = json.load(open("target/autobahn/index.json"))
good = {"OK", "NON-STRICT", "INFORMATIONAL"}
counts = collections.Counter()
bad = []
for cases in index.values():
    for case_id, entry in cases.items():
        counts[entry["behavior"]] += 1
        if entry["behavior"] not in good:
            bad.append((case_id, entry["behavior"]))
for case_id, behavior in sorted(bad):
    print(f"  case {case_id}: {behavior}")
print("autobahn:", dict(counts))
passed = sum(counts.values()) - len(bad)
print(f"autobahn: {passed} passed, {len(bad)} failed")
sys.exit(1 if bad or passed != 301 else 0)
PY
