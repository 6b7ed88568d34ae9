# Shared helpers of compare.sh, regression.sh, restart.sh and peers/check.sh: building,
# starting and stopping servers, and reading a process tree's CPU time and
# RSS from /proc. Sourced, not run, from the repository root.

# The reference servers (docs/bench/peers/README.md). Another directory
# with the same layout and command lines may be given instead.
PEERS_DIR=${PEERS_DIR:-docs/bench/peers}

# Every process a script starts is listed here and killed by PID on exit.
STARTED_PIDS=()

# cleanup kills every process tree the script started, by PID.
cleanup() {
	local pid
	for pid in "${STARTED_PIDS[@]}"; do
		kill_tree "$pid"
	done
	[[ -n "${WORK:-}" && -d "$WORK" ]] && rm -rf "$WORK"
	return 0
}

# tree_pids PID: PID and all its descendants, parents first.
tree_pids() {
	local pid=$1 child f
	[[ -d /proc/$pid ]] || return 0
	echo "$pid"
	for f in /proc/"$pid"/task/*/children; do
		[[ -r $f ]] || continue
		for child in $(<"$f"); do
			tree_pids "$child"
		done
	done
}

# kill_tree PID: TERM the tree, then KILL whatever is left after 5 s.
kill_tree() {
	local pids pid i
	pids=$(tree_pids "$1")
	[[ -n $pids ]] || return 0
	kill -TERM $pids 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		alive_any $pids || return 0
		sleep 0.1
	done
	kill -KILL $pids 2>/dev/null || true
}

# alive_any PID...: whether any of them still runs (zombies do not count).
alive_any() {
	local pid state
	for pid in "$@"; do
		state=$(awk '{print $3}' /proc/"$pid"/stat 2>/dev/null) || continue
		[[ -n $state && $state != Z ]] && return 0
	done
	return 1
}

# tree_cpu_ticks PID: utime+stime of the tree, in clock ticks.
tree_cpu_ticks() {
	local total=0 pid stat rest f
	for pid in $(tree_pids "$1"); do
		stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
		rest=${stat##*) } # fields from 3 on; the name may hold spaces
		read -r -a f <<<"$rest"
		total=$((total + f[11] + f[12])) # fields 14 (utime) and 15 (stime)
	done
	echo "$total"
}

# tree_rss_kib PID: resident set of the tree, KiB. Builtins only: it runs
# every half second during a measurement.
tree_rss_kib() {
	local total=0 pid key value rest
	for pid in $(tree_pids "$1"); do
		while read -r key value rest; do
			[[ $key == VmRSS: ]] && total=$((total + value))
		done 2>/dev/null <"/proc/$pid/status" || true
	done
	echo "$total"
}

# busy_ticks: CPU ticks the whole machine spent busy, all processes.
busy_ticks() {
	awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat
}

# wait_quiet: wait up to QUIET_WAIT s (default 20) for the machine to be
# below QUIET_PCT % busy (default 15), so that another job's load does not
# land in one server's figures only.
wait_quiet() {
	local i b0 b1 limit=$(($(nproc) * $(getconf CLK_TCK) * ${QUIET_PCT:-15} / 100))
	for ((i = 0; i < ${QUIET_WAIT:-20}; i++)); do
		b0=$(busy_ticks)
		sleep 1
		b1=$(busy_ticks)
		((b1 - b0 <= limit)) && return 0
	done
	echo "  (machine still busy after ${QUIET_WAIT:-20}s: measuring anyway)" >&2
}

# free_port: a TCP port nothing listens on. Other servers on this machine
# may use SO_REUSEPORT, and a second server bound to their port would
# silently share the load with them.
free_port() {
	local port hex
	while :; do
		port=$((20000 + RANDOM % 20000))
		hex=$(printf ':%04X ' "$port")
		if ! grep -q "$hex" /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
			echo "$port"
			return
		fi
	done
}

# build_all: into $WORK, lancelot from the work tree (the load generator:
# bench and ask), the lancelot server under test (lancelot-server: the work
# tree, or the commit LANCELOT_REV when set), benchplot and the compiled
# peers. Sets LANCELOT_DESC to what the server was built from.
build_all() {
	echo "building into $WORK" >&2
	build_server
	build_tool lancelot . ./cmd/lancelot
	build_tool benchplot cmd/benchplot .
	build_peers
}

# build_tool NAME DIR PKG: the work tree's PKG, built in DIR, into
# $WORK/NAME. DIR is the module's directory: cmd/benchplot is a module of
# its own. Should the work tree not build (an edit in progress) while
# LANCELOT_REV is set, PKG comes from that commit instead, and the script
# says so (in a commit where DIR is no module of its own, go finds the one
# above it).
build_tool() {
	go -C "$2" build -o "$WORK/$1" "$3" && return 0
	[[ -n ${LANCELOT_REV:-} ]] || return 1
	echo "the work tree's $2 ($3) does not build: using $LANCELOT_REV's instead" >&2
	go -C "$WORK/src/$2" build -o "$WORK/$1" "$3"
}

# build_peers: the compiled reference servers, into $WORK.
build_peers() {
	(cd "$PEERS_DIR/go-single" && go build -o "$WORK/go-single" .)
	gcc -O2 -Wall -Wextra -o "$WORK/c-epoll" "$PEERS_DIR/c-epoll/server.c"
}

# build_server: the lancelot server under test, see build_all.
build_server() {
	if [[ -z ${LANCELOT_REV:-} ]]; then
		go build -o "$WORK/lancelot-server" ./cmd/lancelot
		LANCELOT_DESC=$(git describe --always --dirty 2>/dev/null || echo "work tree")
		return
	fi
	mkdir -p "$WORK/src"
	git archive "$LANCELOT_REV" | tar -x -C "$WORK/src"
	(cd "$WORK/src" && go build -o "$WORK/lancelot-server" ./cmd/lancelot)
	LANCELOT_DESC=$(git rev-parse --short "$LANCELOT_REV")
}

# server_cmd NAME PORT WORKERS: set CMD to the command line of server NAME
# on 127.0.0.1:PORT. Every reference server takes HOST PORT [WORKERS];
# only c-epoll (and lancelot) use WORKERS, the others are one process.
server_cmd() {
	local name=$1 port=$2 workers=$3
	case $name in
	py-simple) CMD=(python3 "$PEERS_DIR/py/server_simple.py" 127.0.0.1 "$port" "$workers") ;;
	py-threads) CMD=(python3 "$PEERS_DIR/py/server_threads.py" 127.0.0.1 "$port" "$workers") ;;
	py-async) CMD=(python3 "$PEERS_DIR/py/server_async.py" 127.0.0.1 "$port" "$workers") ;;
	go-single) CMD=("$WORK/go-single" 127.0.0.1 "$port" "$workers") ;;
	c-epoll) CMD=("$WORK/c-epoll" 127.0.0.1 "$port" "$workers") ;;
	lancelot) CMD=("$WORK/lancelot-server" serve --listen "127.0.0.1:$port" --workers "$workers" --log-level warn) ;;
	*) echo "unknown server $name" >&2; return 1 ;;
	esac
}

# start_server NAME PORT [WORKERS]: start a server in the background, set
# SERVER_PID to its own PID (no wrapping shell) and wait until it answers.
start_server() {
	local name=$1 port=$2 workers=${3:-$(nproc)}
	server_cmd "$name" "$port" "$workers"
	"${CMD[@]}" >"$WORK/$name.log" 2>&1 &
	SERVER_PID=$!
	STARTED_PIDS+=("$SERVER_PID")
	wait_answering "$port" || { echo "$name did not start:" >&2; cat "$WORK/$name.log" >&2; return 1; }
}

# wait_answering PORT: wait until the server answers a question (10 s),
# asked by `lancelot ask` when it has been built, else by peers/client.py.
wait_answering() {
	local i ask=("$WORK/lancelot" ask --server "127.0.0.1:$1" --timeout 1s "What is your name?")
	[[ -x $WORK/lancelot ]] || ask=(python3 "$PEERS_DIR/client.py" 127.0.0.1 "$1" one)
	for ((i = 0; i < 100; i++)); do
		"${ask[@]}" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

# stop_server: stop the server started last.
stop_server() {
	kill_tree "$SERVER_PID"
	wait "$SERVER_PID" 2>/dev/null || true
}

# children_seconds FILE: the children's user+sys seconds from `times` output.
children_seconds() {
	awk 'NR == 2 {
		s = 0
		for (i = 1; i <= 2; i++) { split($i, p, /[ms]/); s += p[1] * 60 + p[2] }
		printf "%.3f", s
	}' "$1"
}

# json_string TEXT: TEXT as a JSON string (first line only).
json_string() {
	local s=${1%%$'\n'*}
	s=${s//\\/\\\\}
	s=${s//\"/\\\"}
	s=${s//$'\t'/ }
	printf '"%s"' "$s"
}
