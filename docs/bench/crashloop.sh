#!/usr/bin/env bash
# crashloop.sh: fresh-client latency while workers crash in a loop
# (TestResilienceCrashLoop and TestResilienceCrashLoopNobodyLeft in
# cmd/lancelot/resilience_test.go). A --workers 2 server has a worker
# SIGKILLed every 0.3 s, alternating slots (in the first test a slot's worker
# only while the other slot's is ready, in the second whether or not it is),
# while a new client connects, asks and closes every 20 ms. Prints, for each
# test, the kills, p50/p99/max answer latency and the failed clients; a test
# fails if p99 > 100 ms or a client fails that no kill explains.
#
# usage: docs/bench/crashloop.sh [SECONDS]   (default 20)
# env:   LANCELOT_BIN=<binary>  measure that binary instead of the work tree's
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${1:-20}
[[ $DURATION =~ ^[0-9]+$ && $DURATION -gt 0 ]] || { echo "crashloop.sh: SECONDS $DURATION: want a whole number" >&2; exit 2; }

OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT

status=0
# The tests take the binary under test as LANCELOT_TEST_BIN.
LANCELOT_TEST_BIN=${LANCELOT_BIN:-${LANCELOT_TEST_BIN:-}} LANCELOT_CRASHLOOP_DURATION=${DURATION}s go test -count=1 -timeout "$((2 * DURATION + 120))s" \
	-run '^TestResilienceCrashLoop(NobodyLeft)?$' -v ./cmd/lancelot >"$OUT" 2>&1 || status=$?

grep -E '^=== RUN|crash loop:|fresh-client p99|^--- (PASS|FAIL)' "$OUT" | sed 's/^ *//' | cut -c1-400
exit "$status"
