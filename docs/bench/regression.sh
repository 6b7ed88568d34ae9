#!/usr/bin/env bash
# regression.sh: steady-state throughput of this work tree's lancelot
# against an older build's (0.3.0 by default), one server at a time alone
# on 127.0.0.1 with the same --workers, the builds interleaved in every
# round. The load generator is this work tree's `lancelot bench --json` for
# both. Prints, per load, the median exchanges/s of each build over the
# rounds and the ratio new/old, with the machine's load average.
#
# usage: docs/bench/regression.sh [OLD_BIN]   (from anywhere)
#   OLD_BIN defaults to /tmp/lancelot-0.3.0; build it with
#   git worktree add /tmp/old-00deae7 00deae7 && go -C /tmp/old-00deae7 build -o /tmp/lancelot-0.3.0 ./cmd/lancelot
#
# Settings (environment):
#   ROUNDS=3            rounds; each runs every load against both builds
#   DURATION=5s         length of each load
#   WORKERS=$(nproc)    --workers of both servers
#   QUIET_WAIT=20 QUIET_PCT=15   before each load, wait up to QUIET_WAIT s for
#                       the machine to be below QUIET_PCT % busy
set -euo pipefail
cd "$(dirname "$0")/../.."
. docs/bench/lib.sh

OLD_BIN=${1:-${OLD_BIN:-/tmp/lancelot-0.3.0}}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
WORKERS=${WORKERS:-$(nproc)}
[[ -x $OLD_BIN ]] || { echo "regression.sh: $OLD_BIN: no such executable (see usage)" >&2; exit 2; }
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "regression.sh: ROUNDS=$ROUNDS: want a positive whole number" >&2; exit 2; }

# label|bench flags, as compare.sh's
LOADS=(
	"persistent c=100|-c 100"
	"pipelined k=3 c=100|-c 100 --pipeline 3"
	"book c=50|--mode book -c 50"
)

WORK=$(mktemp -d)
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_build BIN PORT: start lancelot BIN like lib.sh's start_server.
start_build() {
	"$1" serve --listen "127.0.0.1:$2" --workers "$WORKERS" --log-level warn >"$WORK/server.log" 2>&1 &
	SERVER_PID=$!
	STARTED_PIDS+=("$SERVER_PID")
	wait_answering "$2" || { echo "$1 did not start:" >&2; cat "$WORK/server.log" >&2; return 1; }
}

# run_load BUILD BIN LABEL FLAGS: one load against a fresh server; appends
# "LABEL|BUILD|exchanges/s" to results (0 when the load failed).
run_load() {
	local build=$1 bin=$2 label=$3 flags=$4 port rate
	wait_quiet
	port=$(free_port)
	start_build "$bin" "$port"
	# shellcheck disable=SC2086 # FLAGS are words
	"$WORK/lancelot" bench --server "127.0.0.1:$port" --duration "$DURATION" --json $flags \
		>"$WORK/bench.json" 2>"$WORK/bench.err" || true
	stop_server
	rate=$(grep -o '"exchanges_per_s":[0-9.e+]*' "$WORK/bench.json" | head -1 | cut -d: -f2)
	[[ -n $rate ]] || { echo "  $build: load failed: $(head -c 300 "$WORK/bench.err")" >&2; rate=0; }
	echo "  $build: $(printf %.0f "$rate") exchanges/s" >&2
	echo "$label|$build|$rate" >>"$WORK/results"
}

# median LABEL BUILD: the median of that load's rates over the rounds.
median() {
	awk -F'|' -v l="$1" -v b="$2" '$1 == l && $2 == b { print $3 }' "$WORK/results" | sort -g |
		awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# rounds LABEL BUILD: that load's rates over the rounds, in order run.
rounds() {
	awk -F'|' -v l="$1" -v b="$2" '$1 == l && $2 == b { printf "%s%.0f", (n++ ? " " : ""), $3 }' "$WORK/results"
}

main() {
	go build -o "$WORK/lancelot" ./cmd/lancelot
	local desc load round
	desc=$(git describe --always --dirty 2>/dev/null || echo "work tree")
	: >"$WORK/results"
	echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
	for ((round = 1; round <= ROUNDS; round++)); do
		for load in "${LOADS[@]}"; do
			echo "round $round: ${load%%|*}, $DURATION each" >&2
			# Alternate which build goes first, so neither always follows the other.
			if ((round % 2)); then
				run_load new "$WORK/lancelot" "${load%%|*}" "${load#*|}"
				run_load old "$OLD_BIN" "${load%%|*}" "${load#*|}"
			else
				run_load old "$OLD_BIN" "${load%%|*}" "${load#*|}"
				run_load new "$WORK/lancelot" "${load%%|*}" "${load#*|}"
			fi
		done
	done
	echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ), new $desc, old $OLD_BIN ($("$OLD_BIN" version 2>/dev/null | head -1))"
	echo "# $(nproc) CPUs, --workers $WORKERS, $ROUNDS rounds of $DURATION, load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
	printf '| load | new exchanges/s | old exchanges/s | new/old | new, each round | old, each round |\n|---|---:|---:|---:|---|---|\n'
	for load in "${LOADS[@]}"; do
		local new old
		new=$(median "${load%%|*}" new)
		old=$(median "${load%%|*}" old)
		awk -v l="${load%%|*}" -v n="$new" -v o="$old" -v rn="$(rounds "${load%%|*}" new)" -v ro="$(rounds "${load%%|*}" old)" \
			'BEGIN { printf "| %s | %.0f | %.0f | %s | %s | %s |\n", l, n, o, (o > 0 ? sprintf("%.2f", n / o) : "n/a"), rn, ro }'
	done
}

main "$@"
