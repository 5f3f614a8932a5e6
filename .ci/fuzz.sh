#!/usr/bin/env bash
# CI: builds every cargo-fuzz target and runs each for FUZZ_SECONDS (default
# 30) on the stable toolchain (`-s none`: no sanitizer, which needs nightly)
# with debug assertions on. Any crash or failed property fails the run.
# The committed seeds are only read; new inputs go to a scratch directory.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
secs=${FUZZ_SECONDS:-30}

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

cd fuzz
if ! cargo fuzz build -s none -a; then
    echo "fuzz: 0 passed, 1 failed (build)"
    exit 1
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
passed=0
failed=0
for target in $(cargo fuzz list); do
    mkdir -p "$scratch/$target"
    log="$scratch/$target.log"
    if cargo fuzz run -s none -a "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$secs" -print_final_stats=1 -timeout=10 >"$log" 2>&1; then
        passed=$((passed + 1))
        runs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$log")
        echo "fuzz $target: ok, ${runs:-?} runs in ${secs}s"
    else
        failed=$((failed + 1))
        echo "fuzz $target: FAILED; the end of its log:"
        tail -n 40 "$log"
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
