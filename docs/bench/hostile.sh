#!/usr/bin/env bash
# hostile.sh: how lancelot holds up under hostile clients. For each attack,
# a fresh server (2 workers, metrics on) on 127.0.0.1; two well-behaved
# clients ask every 20 ms throughout (one connect-ask-close, one on a kept
# connection); the attack starts after WARM seconds, lasts at most its
# duration, and the good clients go on RECOVER seconds more. Recorded per
# attack: the good clients' latency and failures before, during and after,
# the time to recover, the server tree's peak RSS and descriptors, the log
# bytes written and, for the metrics attacks, how long a SIGKILLed worker
# takes to be replaced and answer. Writes OUT (JSON) and MD (a markdown
# table). The tool is cmd/hostile (`go run ./cmd/hostile -h`).
#
# usage: docs/bench/hostile.sh [ATTACK...]     (default: all, in this order)
#   logstall           1500 unknown questions while stderr is a FIFO nobody reads
#   badq               200000 unknown questions, as fast as they go
#   silent             45000 connections that never send a byte
#   trickle            30000 slowloris connections, one byte every 5 s
#   nonreader          8000 connections pipelining questions, never reading
#   nul                1000 connections sending only NUL bytes
#   proxyv2            1000 connections sending a PROXY v2 header
#   metrics-idle       21000 keep-alive connections idle after one GET /metrics
#   metrics-silent     21000 connections to the metrics port that send nothing
#   metrics-bigheader  1000 ~1 MiB request headers sent 64 KiB per 100 ms
#
# env:  SCALE=1              multiply every count (SCALE=0.1 for a quick run)
#       LANCELOT_BIN=path    the server under test (default: built, see below)
#       LANCELOT_REV=commit  build that commit's server (git archive) instead
#                            of the work tree's
#       OUT=docs/bench/hostile-results.json  MD=docs/bench/hostile-results.md
#       WARM=5 RECOVER=15    seconds of good traffic before and after an attack
#       DURATION=            override every attack's duration (seconds)
#       SERVER_FLAGS=        more `lancelot serve` flags (e.g. "--max-connections 15000")
#       KILL_DURING="metrics-idle metrics-silent metrics-bigheader"
#                            attacks during which a worker is SIGKILLed:
#                            KILLS=3 times, the first 2 s after the attack is
#                            in place (or a third into it), each KILL_GAP=6 s
#                            after the previous one was replaced (a kill that
#                            is not stops them)
#       GLOBAL_LIMIT=1500    seconds for the whole run; attacks that would
#                            not fit are skipped, and a watchdog ends it
#       KEEP=dir             keep every attack's raw files (samples) there
#
# All traffic stays in 127.0.0.0/8; attack connections come from
# 127.0.0.2.. (the good clients from 127.0.0.1). Every process started is
# killed by PID on exit (lib.sh's cleanup), failure or not.
set -euo pipefail
cd "$(dirname "$0")/../.."
. docs/bench/lib.sh

SCALE=${SCALE:-1}
OUT=${OUT:-docs/bench/hostile-results.json}
MD=${MD:-docs/bench/hostile-results.md}
WARM=${WARM:-5}
RECOVER=${RECOVER:-15}
DURATION=${DURATION:-}
SERVER_FLAGS=${SERVER_FLAGS:-}
KILL_DURING=${KILL_DURING:-metrics-idle metrics-silent metrics-bigheader}
KILLS=${KILLS:-3}
KILL_GAP=${KILL_GAP:-6}
GLOBAL_LIMIT=${GLOBAL_LIMIT:-1500}
KEEP=${KEEP:-}

# name|hostile mode|count at SCALE=1|duration s|target (main or metrics)|flags
ATTACKS=(
	"logstall|badq|1500|30|main|--concurrency 16"
	"badq|badq|200000|40|main|--concurrency 64"
	"silent|silent|45000|40|main|"
	"trickle|trickle|30000|40|main|--interval 5s"
	# Small socket buffers bound the kernel memory 8000 stuffed connections
	# take on this shared machine; the server still sees readers that stop.
	"nonreader|nonreader|8000|30|main|--sockbuf 65536"
	"nul|nul|1000|40|main|"
	"proxyv2|proxyv2|1000|40|main|"
	"metrics-idle|metrics-idle|21000|40|metrics|--variant get"
	"metrics-silent|metrics-idle|21000|40|metrics|--variant silent"
	"metrics-bigheader|metrics-bigheader|1000|40|metrics|"
)

WORK=$(mktemp -d)
trap cleanup EXIT
trap 'exit 130' INT TERM

# now_ms: wall clock, unix milliseconds (the tool's timelines use it too).
now_ms() { local t=${EPOCHREALTIME/,/.}; echo "${t%.*}${t#*.}" | cut -c1-13; }

# scaled N: N times SCALE, at least 1.
scaled() { awk -v n="$1" -v s="$SCALE" 'BEGIN { v = int(n * s + 0.5); print (v < 1 ? 1 : v) }'; }

# file_size FILE: bytes, 0 if absent.
file_size() { stat -c %s "$1" 2>/dev/null || echo 0; }

# spec NAME: the ATTACKS line of NAME.
spec() {
	local a
	for a in "${ATTACKS[@]}"; do
		[[ ${a%%|*} == "$1" ]] && { echo "$a"; return; }
	done
	echo "unknown attack $1 (see the usage in $0)" >&2
	return 1
}

# build: the tool from the work tree, the server as LANCELOT_BIN or
# lib.sh's build_server (the work tree, or LANCELOT_REV).
build() {
	echo "building into $WORK" >&2
	go build -o "$WORK/hostile" ./cmd/hostile
	if [[ -n ${LANCELOT_BIN:-} ]]; then
		cp "$LANCELOT_BIN" "$WORK/lancelot-server"
		LANCELOT_DESC="$LANCELOT_BIN"
	else
		build_server
	fi
}

# start_lancelot DIR PORT MPORT STDERR: a server with its pid file in DIR.
start_lancelot() {
	local dir=$1 port=$2 mport=$3 errto=$4
	# shellcheck disable=SC2086 # SERVER_FLAGS are words
	"$WORK/lancelot-server" serve --listen "127.0.0.1:$port" --workers 2 \
		--metrics "127.0.0.1:$mport" --pid-file "$dir/pid" $SERVER_FLAGS >/dev/null 2>"$errto" &
	SERVER_PID=$!
	STARTED_PIDS+=("$SERVER_PID")
	"$WORK/hostile" probe --server "127.0.0.1:$port" --retry-for 15s || return 1
	local i
	for ((i = 0; i < 50; i++)); do
		[[ -s $dir/pid ]] && return 0
		sleep 0.1
	done
	echo "no pid file from the server" >&2
	return 1
}

# bg_start VAR CMD...: start CMD in the background, record its PID in VAR
# and in STARTED_PIDS.
bg_start() {
	local var=$1
	shift
	"$@" &
	printf -v "$var" '%s' "$!"
	STARTED_PIDS+=("$!")
}

# stop_bg PID: SIGTERM a tool process (it prints its JSON) and reap it.
stop_bg() {
	kill -TERM "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# wait_file FILE SECONDS: wait until FILE exists.
wait_file() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		[[ -e $1 ]] && return 0
		sleep 0.1
	done
	return 1
}

# kill_workers DIR PORT UNTIL: while the attack runs (until unix second
# UNTIL), SIGKILL a worker KILLS times and time each replacement. A worker
# that is not replaced in time ends the series: the next kill could take
# the last one.
kill_workers() {
	local dir=$1 port=$2 until=$3 k pause=2
	for ((k = 1; k <= KILLS; k++)); do
		sleep "$pause"
		pause=$KILL_GAP
		(($(date +%s) + 3 < until)) || break
		"$WORK/hostile" restart --pid-file "$dir/pid" --server "127.0.0.1:$port" --timeout 30s \
			>"$dir/restart-$k.json" || break
		grep -q '"answered_ms": null' "$dir/restart-$k.json" && break
	done
}

# run_attack NAME: one attack against a fresh server; files in $WORK/runs/NAME.
run_attack() {
	local name=$1 line mode count dur target flags dir port mport addr errto holder=""
	line=$(spec "$name")
	IFS='|' read -r name mode count dur target flags <<<"$line"
	count=$(scaled "$count")
	dur=${DURATION:-$dur}
	dir=$WORK/runs/$name
	mkdir -p "$dir"
	port=$(free_port)
	mport=$(free_port)
	while [[ $mport == "$port" ]]; do mport=$(free_port); done
	errto=$dir/server.log
	if [[ $name == logstall ]]; then
		# stderr is a FIFO that a sleeping process holds open read-write and
		# never reads: the log reader that stalls.
		errto=$dir/stderr.fifo
		mkfifo "$errto"
		# Not through bg_start: an asynchronous command's stdin would be
		# /dev/null unless redirected on the command itself.
		sleep 100000 <>"$errto" &
		holder=$!
		STARTED_PIDS+=("$holder")
	fi
	start_lancelot "$dir" "$port" "$mport" "$errto" || { echo "$name: server did not start" >&2; return 1; }
	addr=127.0.0.1:$port
	[[ $target == metrics ]] && addr=127.0.0.1:$mport
	local obs good goodp attack restart="" bound=$((WARM + dur + RECOVER + 120))
	bg_start obs "$WORK/hostile" observe --pid-file "$dir/pid" --duration "${bound}s" >"$dir/observe.json"
	bg_start good "$WORK/hostile" good --server "127.0.0.1:$port" --samples --duration "${bound}s" >"$dir/good.json"
	bg_start goodp "$WORK/hostile" good --persistent --server "127.0.0.1:$port" --samples --duration "${bound}s" \
		>"$dir/good-persistent.json"
	sleep "$WARM"
	local log0 t0 t1 log1
	log0=$(file_size "$dir/server.log")
	t0=$(now_ms)
	echo "$name: $mode --count $count $flags against $addr for ${dur}s" >&2
	# shellcheck disable=SC2086 # flags are words
	bg_start attack "$WORK/hostile" "$mode" --server "$addr" --count "$count" --duration "${dur}s" \
		--ready-file "$dir/ready" $flags >"$dir/attack.json"
	if [[ " $KILL_DURING " == *" $name "* ]]; then
		# Once the attack is in place, or a third into it if its setup never
		# completes (a server that bounds it leaves connects waiting).
		wait_file "$dir/ready" "$((dur / 3))" || true
		bg_start restart kill_workers "$dir" "$port" "$((t0 / 1000 + dur))"
	fi
	wait "$attack" || echo "$name: the attack exited with an error" >&2
	t1=$(now_ms)
	log1=$(file_size "$dir/server.log")
	sleep "$RECOVER"
	[[ -n $restart ]] && { wait "$restart" || true; }
	stop_bg "$good"
	stop_bg "$goodp"
	stop_bg "$obs"
	local alive=false note=""
	alive_any "$SERVER_PID" && alive=true
	if [[ -n $holder ]]; then
		# What the server could write: the FIFO's buffer, plus what it
		# writes once unblocked, read for 3 s.
		timeout 3 cat "$errto" >"$dir/server.log" || true
		note="(stderr: a FIFO nobody read; drained after the run)"
		log0=0 log1=0
	fi
	stop_server
	[[ -n $holder ]] && kill_tree "$holder"
	printf '{"attack":"%s","label":"%s","attack_start_ms":%s,"attack_end_ms":%s,"log_bytes":%s,"log_bytes_start":%s,"log_bytes_end":%s,"server_alive":%s,"log_note":"%s"}\n' \
		"$name" "$name $count" "$t0" "$t1" "$(file_size "$dir/server.log")" "$log0" "$log1" "$alive" "$note" \
		>"$dir/events.json"
	echo "$name: done in $(((t1 - t0) / 1000))s, server alive: $alive" >&2
}

# write_meta FILE: what and where this run measured.
write_meta() {
	printf '{"generated":"%s","lancelot":"%s","server_flags":"%s","scale":%s,"warm_s":%s,"recover_s":%s,"host":{"cpus":%d,"kernel":"%s","go":"%s","loadavg_start":"%s","loadavg_end":"%s","nofile_hard":%s}}\n' \
		"$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$LANCELOT_DESC" "$SERVER_FLAGS" "$SCALE" "$WARM" "$RECOVER" "$(nproc)" "$(uname -r)" \
		"$(go env GOVERSION)" "$LOAD_START" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(ulimit -Hn)" >"$1"
}

main() {
	local names=("$@") name line dur deadline=$((SECONDS + GLOBAL_LIMIT)) dirs=()
	((${#names[@]})) || names=($(printf '%s\n' "${ATTACKS[@]}" | cut -d'|' -f1))
	for name in "${names[@]}"; do spec "$name" >/dev/null; done
	# The watchdog: whatever hangs, the run ends, and the trap kills the rest.
	bg_start watchdog bash -c "sleep $GLOBAL_LIMIT; kill -TERM $$"
	LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
	build
	for name in "${names[@]}"; do
		line=$(spec "$name")
		dur=$(cut -d'|' -f4 <<<"$line")
		dur=${DURATION:-$dur}
		if ((SECONDS + WARM + dur + RECOVER + 60 > deadline)); then
			echo "$name: skipped, it would not end within GLOBAL_LIMIT=$GLOBAL_LIMIT s" >&2
			continue
		fi
		run_attack "$name" || echo "$name: failed" >&2
		[[ -f $WORK/runs/$name/events.json ]] && dirs+=("$WORK/runs/$name")
	done
	((${#dirs[@]})) || { echo "no attack ran" >&2; return 1; }
	write_meta "$WORK/meta.json"
	"$WORK/hostile" report --meta "$WORK/meta.json" --json "$OUT" --md "$MD" "${dirs[@]}"
	if [[ -n $KEEP ]]; then
		mkdir -p "$KEEP"
		cp -r "$WORK/runs" "$WORK/meta.json" "$KEEP/"
	fi
	echo "wrote $OUT and $MD" >&2
}

main "$@"
