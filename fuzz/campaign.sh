#!/usr/bin/env bash
# Runs fuzz targets one after another for the given seconds each, on stable
# (-s none) with debug assertions, logging to fuzz/campaign-logs/. New inputs
# go to fuzz/campaign-corpus/<target> (git-ignored); the committed seeds in
# fuzz/corpus/<target> are only read.
#   usage: fuzz/campaign.sh SECONDS TARGET...
set -uo pipefail
cd "$(dirname "$0")"
secs=$1
shift
mkdir -p campaign-logs
for t in "$@"; do
    mkdir -p "campaign-corpus/$t"
    cargo fuzz run -s none -a "$t" "campaign-corpus/$t" "corpus/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 -timeout=10 \
        >"campaign-logs/$t.log" 2>&1
    echo "$t exit $?" >>campaign-logs/status
done
