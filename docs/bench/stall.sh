#!/usr/bin/env bash
# stall.sh: fresh-client latency while one of 2 workers is stopped
# (SIGSTOP: a deadlock or a stuck syscall looks the same to its clients).
# The kernel keeps hashing about half of the new connections to the stopped
# worker's socket; lancelot lends that socket to the other worker at the
# first missed heartbeat answer (release 0.3.0: only once --worker-timeout,
# 10 s by default, had killed the worker).
#
# A `lancelot serve --workers 2` on a free loopback port; once it is ready,
# one worker is SIGSTOPped and, for SECONDS, a fresh client starts every
# 10 ms (open loop, each on its own thread: a stalled client delays no
# other), connects, asks, reads the answer and closes; latency is from the
# connect to the answer. `lancelot bench --mode book` is a closed loop: its
# clients stuck on the stopped socket would stop producing samples, which
# hides exactly what this measures. Then the worker is SIGCONTed (if it is
# still alive). Prints p50/p99/max, failures, and whether the worker was
# killed (a run longer than --worker-timeout includes the kill).
#
# usage: docs/bench/stall.sh [SECONDS]   (default 12)
# env:   LANCELOT_BIN=<binary>  measure that binary instead of the work tree's
set -euo pipefail
cd "$(dirname "$0")/../.."
. docs/bench/lib.sh

DURATION=${1:-12}
[[ $DURATION =~ ^[0-9]+$ && $DURATION -gt 0 ]] || { echo "stall.sh: SECONDS $DURATION: want a whole number" >&2; exit 2; }

WORK=$(mktemp -d)
trap cleanup EXIT
trap 'exit 130' INT TERM

BIN=${LANCELOT_BIN:-}
if [[ -z $BIN ]]; then
	BIN=$WORK/lancelot
	go build -o "$BIN" ./cmd/lancelot
fi

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$BIN" serve --workers 2 --listen "127.0.0.1:$PORT" --pid-file "$WORK/pid" >"$WORK/log" 2>&1 &
SUP=$!
STARTED_PIDS+=("$SUP")
for ((i = 0; i < 100; i++)); do
	[[ -s $WORK/pid && $(<"$WORK/pid") == "$SUP" ]] && break
	sleep 0.1
done
[[ -s $WORK/pid ]] || { echo "stall.sh: server not ready in 10 s:" >&2; cat "$WORK/log" >&2; exit 1; }

read -r -a WORKERS <<<"$(cat /proc/"$SUP"/task/*/children)"
STOPPED=${WORKERS[1]}
# continue it on any exit, so the cleanup's TERM reaches it
trap 'kill -CONT "$STOPPED" 2>/dev/null; cleanup' EXIT
# The prober stops the worker itself, right before its first client.
python3 - "$PORT" "$DURATION" "$STOPPED" >"$WORK/probes" <<'PY'
import os, signal, socket, sys, threading, time
port, duration, stopped = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
out, lock = [], threading.Lock()
def probe():
    t0 = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
            c.sendall(b"What is your name?")
            got = b""
            while not got.endswith(b"."):
                b = c.recv(256)
                if not b:
                    raise EOFError("closed")
                got += b
            err = "" if got == b"My name is Sir Lancelot of Camelot." else "wrong answer"
    except Exception as e:
        err = type(e).__name__
    with lock:
        out.append((time.monotonic() - t0, err))
os.kill(stopped, signal.SIGSTOP)
threads, start = [], time.monotonic()
while time.monotonic() - start < duration:
    t = threading.Thread(target=probe)
    t.start()
    threads.append(t)
    time.sleep(0.01)
for t in threads:
    t.join()
for d, err in out:
    print(f"{d:.6f} {err}")
PY
killed=yes
alive_any "$STOPPED" && killed=no
kill -CONT "$STOPPED" 2>/dev/null || true
lent=$(grep -c 'msg="socket lent"' "$WORK/log" || true)
[[ -n ${STALL_LOG:-} ]] && cp "$WORK/log" "$STALL_LOG"
python3 - "$WORK/probes" "$DURATION" "$killed" "$lent" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
lat = sorted(float(r[0]) for r in rows)
failed = sum(1 for r in rows if len(r) > 1)
q = lambda p: lat[min(len(lat) - 1, max(0, int(p * len(lat) + 0.999999) - 1))]
fmt = lambda s: f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"
print(f"one of 2 workers stopped for {sys.argv[2]} s: {len(lat)} fresh clients, "
      f"p50 {fmt(q(0.5))}, p99 {fmt(q(0.99))}, max {fmt(lat[-1])}; failed {failed}; "
      f"stopped worker killed: {sys.argv[3]}; socket lent lines in the log: {sys.argv[4]}")
PY
