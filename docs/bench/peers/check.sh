#!/usr/bin/env bash
# check.sh: a quick correctness check of the reference servers. Builds the
# compiled ones into a temporary directory, then starts each server alone on
# a free 127.0.0.1 port and asks it the protocol's three questions with
# client.py: one by one, pipelined in one write, one byte per write, after
# whitespace, and followed by an unknown question (the connection must close
# after the earlier answers). Every answer is compared byte for byte. Each
# server is stopped by PID, also on failure or interrupt.
#
# py-simple is the book's server as it is, so it is not asked pipelined
# questions, and an unknown question must end it (the book's KeyError).
#
# usage: docs/bench/peers/check.sh      (from anywhere)
# env:   PEERS="py-simple py-threads py-async go-single c-epoll"
#        WORKERS=2 (c-epoll's worker processes)
set -euo pipefail
cd "$(dirname "$0")/../../.."
. docs/bench/lib.sh

PEERS=${PEERS:-py-simple py-threads py-async go-single c-epoll}
WORKERS=${WORKERS:-2}

WORK=$(mktemp -d)
trap cleanup EXIT
trap 'exit 130' INT TERM

# check_peer NAME: start NAME, run the checks, stop it; fails on any error.
check_peer() {
	local name=$1 port checks=(one bytes space pipelined unknown-pipelined unknown) failed=0
	[[ $name == py-simple ]] && checks=(one bytes space unknown)
	port=$(free_port)
	start_server "$name" "$port" "$WORKERS"
	echo "$name on 127.0.0.1:$port (pid $SERVER_PID):"
	python3 "$PEERS_DIR/client.py" 127.0.0.1 "$port" "${checks[@]}" | sed 's/^/  /' || failed=1
	if [[ $name == py-simple ]]; then
		sleep 0.2
		if alive_any "$SERVER_PID"; then
			echo "  FAIL the unknown question left the server running; the book's ends it"
			failed=1
		else
			echo "  ok the unknown question ended the server, as the book's does"
		fi
	fi
	stop_server
	if ((failed)); then
		echo "  server log:" && sed 's/^/    /' "$WORK/$name.log"
		return 1
	fi
}

main() {
	build_peers
	local name failed=()
	for name in $PEERS; do
		check_peer "$name" || failed+=("$name")
	done
	if ((${#failed[@]})); then
		echo "FAILED: ${failed[*]}" >&2
		return 1
	fi
	echo "all passed: $PEERS"
}

main "$@"
