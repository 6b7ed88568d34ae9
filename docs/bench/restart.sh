#!/usr/bin/env bash
# restart.sh: how long lancelot takes from a worker's SIGKILL until a fresh
# connection is answered again. With one worker every connection queues on
# the killed worker's slot socket (the supervisor keeps it open), so a
# question asked right after the kill is answered exactly when the new
# worker accepts.
#
# The supervisor restarts a worker at once after a stable run, but one that
# crashes again within 10 s is backed off (50 ms, 100 ms, ...) while
# another worker serves its socket. So KILLS kills are spaced SPACING
# seconds apart (the figure users see), and RAPID kills follow back to back:
# with WORKERS=1 (nobody else to serve) a worker that was ready is
# restarted without backoff, so they measure that; before 2026-12 they
# showed the backoff. Writes docs/bench-restart.json;
# compare.sh adds it to the table.
#
# usage: docs/bench/restart.sh
# env:   KILLS=20 SPACING=10.5 RAPID=5 WORKERS=1 OUT=docs/bench-restart.json
#        LANCELOT_REV=<commit>  measure that commit's server instead of the work tree
set -euo pipefail
cd "$(dirname "$0")/../.."
. docs/bench/lib.sh

KILLS=${KILLS:-20}
SPACING=${SPACING:-10.5}
RAPID=${RAPID:-5}
WORKERS=${WORKERS:-1}
OUT=${OUT:-docs/bench-restart.json}

WORK=$(mktemp -d)
trap cleanup EXIT
trap 'exit 130' INT TERM

# ask_ms: ms for `lancelot ask` to get an answer (process start included).
ask_ms() {
	local t0=$EPOCHREALTIME
	"$WORK/lancelot" ask --server "127.0.0.1:$PORT" --timeout 30s "What is your name?" >/dev/null
	awk -v a="${t0/,/.}" -v b="${EPOCHREALTIME/,/.}" 'BEGIN { printf "%.3f", (b - a) * 1000 }'
}

# baseline_ms: the median ask time against a healthy server, subtracted
# from each measure so that only the restart is left.
baseline_ms() {
	local i
	for ((i = 0; i < 15; i++)); do ask_ms; echo; done | sort -n | sed -n 8p
}

# first_worker: a child of the supervisor.
first_worker() {
	local f
	for f in /proc/"$SERVER_PID"/task/*/children; do
		[[ -r $f ]] || continue
		set -- $(<"$f")
		[[ $# -gt 0 ]] && { echo "$1"; return; }
	done
	return 1
}

# kill_once: SIGKILL a worker and print ms until answered, less baseline.
kill_once() {
	local w t0 ms
	w=$(first_worker) || { echo "no worker left: the server died" >&2; return 1; }
	t0=$EPOCHREALTIME
	kill -KILL "$w"
	"$WORK/lancelot" ask --server "127.0.0.1:$PORT" --timeout 30s "What is your name?" >/dev/null || return 1
	ms=$(awk -v a="${t0/,/.}" -v b="${EPOCHREALTIME/,/.}" -v base="$BASE" \
		'BEGIN { d = (b - a) * 1000 - base; printf "%.1f", d < 0 ? 0 : d }')
	echo "  kill worker $w: answered again after $ms ms" >&2
	echo "$ms"
}

main() {
	go build -o "$WORK/lancelot" ./cmd/lancelot
	build_server
	PORT=$(free_port)
	start_server lancelot "$PORT" "$WORKERS"
	BASE=$(baseline_ms)
	echo "ask baseline: $BASE ms; $KILLS kills ${SPACING}s apart, then $RAPID in a row" >&2
	local spaced=() rapid=() i
	sleep "$SPACING" # the first worker must have run stably too
	for ((i = 0; i < KILLS; i++)); do
		spaced+=("$(kill_once)") || exit 1
		((i + 1 < KILLS)) && sleep "$SPACING"
	done
	for ((i = 0; i < RAPID; i++)); do
		rapid+=("$(kill_once)") || exit 1
	done
	stop_server
	local IFS=,
	printf '{"generated":"%s","lancelot":"%s","workers":%d,"spacing_s":%s,"baseline_ms":%s,"spaced_ms":[%s],"rapid_ms":[%s]}\n' \
		"$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$LANCELOT_DESC" "$WORKERS" "$SPACING" "$BASE" "${spaced[*]}" "${rapid[*]}" >"$OUT"
	echo "wrote $OUT" >&2
}

main "$@"
