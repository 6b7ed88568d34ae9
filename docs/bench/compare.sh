#!/usr/bin/env bash
# compare.sh: run the same loads, with one load generator (lancelot bench),
# against lancelot and each reference server of docs/bench/peers, one
# server at a time on 127.0.0.1, and record throughput, latency, errors, the
# server's CPU time (whole process tree) and RSS. Writes the figures to
# docs/bench-results.json, the chart to docs/benchmarks.png and the table
# into docs/benchmarks.md (between its "results" markers).
#
# usage: docs/bench/compare.sh      (from anywhere; works from the repo root)
#
# Settings (environment):
#   DURATION=10s        length of each load
#   ROUNDS=1            run every load this many times, servers interleaved;
#                       the table shows each server's best round
#   SERVERS="py-simple py-threads py-async go-single c-epoll lancelot"
#   WORKERS=$(nproc)    lancelot --workers and c-epoll workers for the loads
#   IDLE_SERVERS="go-single c-epoll lancelot"   servers for the idle figures
#   IDLE_CONNS=10000    connections held for the RSS-per-connection figure
#   IDLE_HOLD=3s        how long they are held
#   IDLE_MAX=0          if set (e.g. 100000): also try to hold that many at once
#   IDLE_MAX_SERVERS="c-epoll lancelot"  IDLE_MAX_WORKERS=6  server processes for it
#   LANCELOT_REV=<commit>  measure that commit's server (git archive) instead
#                       of the work tree; bench and benchplot come from the work
#                       tree, or from that commit when the work tree does not build
#   PEERS_DIR=docs/bench/peers  the reference servers (relative to the repo
#                       root); another directory with the same layout and
#                       command lines may stand in
#   OUT=docs/bench-results.json  PNG=docs/benchmarks.png  MD=docs/benchmarks.md
#   RESTART=docs/bench-restart.json   restart.sh's result, shown in the table if present
#   QUIET_WAIT=20 QUIET_PCT=15   before each load, wait up to QUIET_WAIT s for the
#                       machine to be below QUIET_PCT % busy (other jobs' load)
set -euo pipefail
cd "$(dirname "$0")/../.."
. docs/bench/lib.sh

DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-1}
SERVERS=${SERVERS:-py-simple py-threads py-async go-single c-epoll lancelot}
WORKERS=${WORKERS:-$(nproc)}
IDLE_SERVERS=${IDLE_SERVERS:-go-single c-epoll lancelot}
IDLE_CONNS=${IDLE_CONNS:-10000}
IDLE_HOLD=${IDLE_HOLD:-3s}
IDLE_MAX=${IDLE_MAX:-0}
IDLE_MAX_SERVERS=${IDLE_MAX_SERVERS:-c-epoll lancelot}
IDLE_MAX_WORKERS=${IDLE_MAX_WORKERS:-6}
OUT=${OUT:-docs/bench-results.json}
PNG=${PNG:-docs/benchmarks.png}
MD=${MD:-docs/benchmarks.md}
RESTART=${RESTART:-docs/bench-restart.json}
QUIET_WAIT=${QUIET_WAIT:-20}
QUIET_PCT=${QUIET_PCT:-15}

# label|bench flags
LOADS=(
	"persistent c=100|-c 100"
	"pipelined k=3 c=100|-c 100 --pipeline 3"
	"book c=50|--mode book -c 50"
)

WORK=$(mktemp -d)
trap cleanup EXIT
trap 'exit 130' INT TERM
TICKS=$(getconf CLK_TCK)

# seconds TICKS: clock ticks as seconds.
seconds() { awk -v t="$1" -v hz="$TICKS" 'BEGIN { printf "%.3f", t / hz }'; }

# watch_server PID: while PID (the load generator) runs, sample the server
# tree every 0.5 s: PEAK_RSS (KiB) and LAST_CPU (ticks, the fallback should
# the server die before the final reading).
watch_server() {
	local rss
	PEAK_RSS=0
	LAST_CPU=0
	while alive_any "$1"; do
		rss=$(tree_rss_kib "$SERVER_PID")
		((rss > PEAK_RSS)) && PEAK_RSS=$rss
		LAST_CPU=$(tree_cpu_ticks "$SERVER_PID")
		sleep 0.5
	done
}

# run_load SERVER LABEL FLAGS ROUND: one load against a fresh server; appends
# a JSON record to runs.jsonl.
run_load() {
	local name=$1 label=$2 flags=$3 round=$4 port cpu0 cpu1 busy0 busy1 bench alive=true result
	wait_quiet
	port=$(free_port)
	start_server "$name" "$port" "$WORKERS"
	cpu0=$(tree_cpu_ticks "$SERVER_PID")
	busy0=$(busy_ticks)
	(
		# shellcheck disable=SC2086 # FLAGS are words
		"$WORK/lancelot" bench --server "127.0.0.1:$port" --duration "$DURATION" --json $flags \
			>"$WORK/bench.json" 2>"$WORK/bench.err" || true
		times >"$WORK/times" # the load generator's own CPU time
	) &
	bench=$!
	STARTED_PIDS+=("$bench")
	watch_server "$bench"
	wait "$bench" || true
	busy1=$(busy_ticks)
	cpu1=$(tree_cpu_ticks "$SERVER_PID")
	((cpu1 > LAST_CPU)) || cpu1=$LAST_CPU
	alive_any "$SERVER_PID" || alive=false
	stop_server
	result=$(<"$WORK/bench.json")
	printf '{"server":"%s","load":"%s","round":%d,"alive":%s,"server_cpu_s":%s,"bench_cpu_s":%s,"machine_busy_s":%s,"rss_kib":%d,"error":%s,"result":%s}\n' \
		"$name" "$label" "$round" "$alive" "$(seconds $((cpu1 - cpu0)))" "$(children_seconds "$WORK/times")" \
		"$(seconds $((busy1 - busy0)))" "$PEAK_RSS" "$(json_string "$(<"$WORK/bench.err")")" "${result:-null}" \
		>>"$WORK/runs.jsonl"
	echo "  $name: $(tail -c 400 "$WORK/runs.jsonl" | grep -o '"exchanges_per_s":[0-9.]*' || echo failed)" >&2
}

# run_idle SERVER CONNS WORKERS: hold CONNS idle connections against a fresh
# server, sampling the server tree's RSS meanwhile; appends to idle.jsonl.
run_idle() {
	local name=$1 conns=$2 workers=$3 port rss0 bench alive=true result
	wait_quiet
	port=$(free_port)
	start_server "$name" "$port" "$workers"
	sleep 0.5 # let the server settle before the baseline
	rss0=$(tree_rss_kib "$SERVER_PID")
	"$WORK/lancelot" bench --server "127.0.0.1:$port" --mode idle -c "$conns" --duration "$IDLE_HOLD" --json \
		>"$WORK/idle.json" 2>"$WORK/idle.err" &
	bench=$!
	STARTED_PIDS+=("$bench")
	watch_server "$bench"
	wait "$bench" || true
	alive_any "$SERVER_PID" || alive=false
	stop_server
	result=$(<"$WORK/idle.json")
	printf '{"server":"%s","connections":%d,"workers":%d,"alive":%s,"rss_before_kib":%d,"rss_held_kib":%d,"error":%s,"result":%s}\n' \
		"$name" "$conns" "$workers" "$alive" "$rss0" "$((PEAK_RSS > rss0 ? PEAK_RSS : rss0))" "$(json_string "$(<"$WORK/idle.err")")" "${result:-null}" \
		>>"$WORK/idle.jsonl"
	echo "  $name: $(tail -c 400 "$WORK/idle.jsonl" | grep -o '"idle_held":[0-9]*' || echo 'none held')" >&2
}

# write_results: assemble the JSON file from the records.
write_results() {
	{
		printf '{"generated":"%s","lancelot":"%s","host":{"cpus":%d,"kernel":"%s","go":"%s"},' \
			"$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$LANCELOT_DESC" "$(nproc)" "$(uname -r)" "$(go env GOVERSION)"
		printf '"duration":"%s","rounds":%d,"workers":%d,\n"runs":[\n' "$DURATION" "$ROUNDS" "$WORKERS"
		paste -sd, "$WORK/runs.jsonl"
		printf '],\n"idle":[\n'
		[[ -s $WORK/idle.jsonl ]] && paste -sd, "$WORK/idle.jsonl"
		printf ']}\n'
	} >"$OUT"
}

main() {
	build_all
	: >"$WORK/runs.jsonl"
	: >"$WORK/idle.jsonl"
	local round load server
	for ((round = 1; round <= ROUNDS; round++)); do
		for load in "${LOADS[@]}"; do
			echo "round $round: ${load%%|*}, $DURATION each" >&2
			for server in $SERVERS; do
				run_load "$server" "${load%%|*}" "${load#*|}" "$round"
			done
		done
	done
	echo "idle: $IDLE_CONNS connections held $IDLE_HOLD" >&2
	for server in $IDLE_SERVERS; do
		run_idle "$server" "$IDLE_CONNS" "$WORKERS"
	done
	if ((IDLE_MAX > 0)); then
		echo "idle: $IDLE_MAX connections, $IDLE_MAX_WORKERS server processes" >&2
		for server in $IDLE_MAX_SERVERS; do
			run_idle "$server" "$IDLE_MAX" "$IDLE_MAX_WORKERS"
		done
	fi
	write_results
	local restart=()
	[[ -f $RESTART ]] && restart=(-restart "$RESTART")
	"$WORK/benchplot" -in "$OUT" -png "$PNG" -md "$MD" "${restart[@]}"
	echo "wrote $OUT, $PNG and the table in $MD" >&2
}

main "$@"
