#!/usr/bin/env bash
# chaos.sh: the chaos soak (TestChaosSoak in cmd/lancelot/chaos_test.go)
# for as long as you like. A --workers 2 server (--shutdown-timeout 5s)
# under 4 book-style and 4 long-lived clients, every answer checked, and 16
# persistent connections that never reconnect, gets random HUP, TTIN, TTOU
# (kept within 1..4 workers) and USR2; the "kills" variant also SIGKILLs
# random ready workers. Handovers must keep every persistent connection
# open but those a killed worker held. Prints one summary line per variant (exchanges,
# failures by kind, actions sent) and the verdict; the soak's assertions
# are the test's.
#
# usage: docs/bench/chaos.sh [SECONDS]   (default 60; each variant runs that long)
# env:   LANCELOT_BIN=<binary>       soak that binary instead of the work tree's
#        LANCELOT_CHAOS_SEED=<seed>  replay a run's choices (printed by every run)
#        CHAOS_VARIANT=signals|kills one variant only (default: both)
#        CHAOS_LOG=<file>            on failure, keep go test's whole output there
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${1:-60}
[[ $DURATION =~ ^[0-9]+$ && $DURATION -gt 0 ]] || { echo "chaos.sh: SECONDS $DURATION: want a whole number" >&2; exit 2; }
RUN='^TestChaosSoak$'
[[ -n ${CHAOS_VARIANT:-} ]] && RUN="$RUN/^${CHAOS_VARIANT}\$"

OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT

status=0
# The tests take the binary under test as LANCELOT_TEST_BIN.
LANCELOT_TEST_BIN=${LANCELOT_BIN:-${LANCELOT_TEST_BIN:-}} LANCELOT_CHAOS_DURATION=${DURATION}s go test -count=1 -timeout "$((2 * DURATION + 300))s" \
	-run "$RUN" -v ./cmd/lancelot >"$OUT" 2>&1 || status=$?

grep -E 'chaos seed|chaos (signals|kills):|persistent connections:|^ *--- (PASS|FAIL)' "$OUT" | sed 's/^ *//'
if [[ $status -ne 0 ]]; then
	echo "go test exited $status; the failures:" >&2
	grep -E '^ +[a-z_]+_test\.go:[0-9]+: ' "$OUT" | grep -Ev 'chaos (seed|signals:|kills:)' | cut -c1-600 >&2
	if [[ -n ${CHAOS_LOG:-} ]]; then cp "$OUT" "$CHAOS_LOG"; echo "full output (server logs included): $CHAOS_LOG" >&2; fi
fi
exit "$status"
