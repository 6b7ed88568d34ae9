#!/usr/bin/env bash
# Start and reload times with a large answers table: for each size, a config
# file of that many questions, `lancelot serve --workers 2` until its pid
# file appears (every worker ready), then `lancelot reload` until it
# returns (every worker replaced). Run from the repository root:
#
#   docs/bench/answers.sh [SIZE...]     (default: 2000 8000 100000; 3 runs each)
#
# Figures on this project's 2-CPU machine are in docs/operations.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
source docs/bench/lib.sh
trap cleanup EXIT
WORK=$(mktemp -d)
go build -o "$WORK/lancelot" ./cmd/lancelot
port=${PORT:-17081}
now() { date +%s.%N; }
for n in "${@:-2000 8000 100000}"; do
	for size in $n; do
		cfg=$WORK/answers-$size.yaml
		{
			echo "answers:"
			for ((i = 0; i < size; i++)); do
				echo "  \"What is the airspeed velocity of swallow number $i?\": \"Answer number $i.\""
			done
		} >"$cfg"
		for run in 1 2 3; do
			rm -f "$WORK/pid"
			start=$(now)
			"$WORK/lancelot" serve --listen 127.0.0.1:$port --workers 2 --config "$cfg" --pid-file "$WORK/pid" 2>"$WORK/log" &
			pid=$!
			STARTED_PIDS+=("$pid")
			while [[ ! -s $WORK/pid ]] && kill -0 "$pid" 2>/dev/null; do sleep 0.005; done
			ready=$(now)
			"$WORK/lancelot" reload --pid-file "$WORK/pid"
			reloaded=$(now)
			answer=$("$WORK/lancelot" ask --server 127.0.0.1:$port "What is the airspeed velocity of swallow number $((size - 1))?")
			printf '%6d entries (%s): ready after %.2f s, reload %.2f s, answer "%s"\n' "$size" "$(du -h "$cfg" | cut -f1)" \
				"$(echo "$ready - $start" | bc)" "$(echo "$reloaded - $ready" | bc)" "$answer"
			kill "$pid"
			wait "$pid" 2>/dev/null || true
		done
	done
done
