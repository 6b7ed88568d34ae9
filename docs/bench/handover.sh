#!/usr/bin/env bash
# Connections outliving processes (handover): what a reload, a TTOU and a
# TTIN cost clients that keep their connection open. Run from the
# repository root:
#
#   docs/bench/handover.sh [BINARY]     (default: builds ./cmd/lancelot)
#
# 1. 200 persistent clients, each asking a question every 200 ms, through
#    10 reloads (HUP), a TTOU (2 -> 1) and a TTIN (1 -> 2): connections the
#    server closed (target 0), and for each operation how long the
#    processes it replaced outlived its "rollout complete" (target < 1 s).
# 2. 10,000 idle connections across one reload: how many were handed over
#    (target all), how long the old workers outlived the reload, and
#    whether each connection still answers.
# 3. TTIN from 1 to 2 workers with 1,000 idle connections: the new
#    worker's share 2 s after the rollout completed (target >= 40%).
# 4. 200 persistent clients through 3 binary upgrades of the same build
#    (`lancelot upgrade`): connections closed (target 0), and how long the
#    old supervisor and its workers outlived each upgrade's completion.
# 5. 50,000 idle connections across one binary upgrade (--workers 5, so
#    each process holds at most ~10,000; `lancelot bench --mode idle`
#    spreads the clients over several processes and source addresses):
#    how many were handed over, how many are still open
#    afterwards, and how long the old generation outlived the upgrade.
#
# The client is python3 (asyncio), so the numbers are not bound by a Go
# client sharing the server's scheduler. The open-files limit must allow
# 10,000 connections per process.
set -euo pipefail
cd "$(dirname "$0")/../.."
source docs/bench/lib.sh
trap cleanup EXIT
WORK=$(mktemp -d)
BIN=${1:-}
if [[ -z $BIN ]]; then
	BIN=$WORK/lancelot
	go build -o "$BIN" ./cmd/lancelot
fi
ulimit -n 20000

# serve ARGS...: starts the server on a free port; sets PORT, SPID.
serve() {
	PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	rm -f "$WORK/pid"
	"$BIN" serve --listen 127.0.0.1:$PORT --pid-file "$WORK/pid" "$@" 2>"$WORK/log" &
	SPID=$!
	STARTED_PIDS+=("$SPID")
	while [[ ! -s $WORK/pid ]]; do sleep 0.01; done
}

stop() {
	kill_tree "$SPID"
	wait "$SPID" 2>/dev/null || true
}

# client.py MODE PORT LOG PIDFILE BINARY: the clients and the operations
# of every part below; the supervisor is the one the pid file names.
cat >"$WORK/client.py" <<'PY'
import asyncio, os, re, subprocess, sys, time

Q, A = b"What is your quest?", b"To seek the Holy Grail."
mode, port, log, pidfile, binary = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]

def supervisor():
    with open(pidfile) as f:
        return int(f.read())

def children(pid):
    pids = []
    for t in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{t}/children") as c:
            pids += [int(p) for p in c.read().split()]
    return pids

def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False

def outlived(pids, since, limit):
    """How long after since the last of pids lived (at most limit s)."""
    while any(alive(p) for p in pids) and time.monotonic() - since < limit:
        time.sleep(0.002)
    return time.monotonic() - since

def completes():
    with open(log) as f:
        text = f.read()
    return text.count('msg="rollout complete"') + text.count('msg="rollout aborted')

def operation(sig, name):
    """Signals the supervisor, waits for the rollout to complete, and
    returns how long the workers it replaced outlived that moment."""
    spid = supervisor()
    before, done = children(spid), completes()
    t0 = time.monotonic()
    os.kill(spid, sig)
    while completes() == done:
        if time.monotonic() - t0 > 60:
            sys.exit(f"{name}: no rollout complete after 60 s")
        time.sleep(0.002)
    t1 = time.monotonic()
    with open(log) as f:
        serving = re.findall(r'msg="rollout complete".* pids="?([0-9 ]+)"?', f.read())[-1].split()
    replaced = [p for p in before if str(p) not in serving]
    gone = outlived(replaced, t1, 40)
    print(f"  {name}: rollout {t1 - t0:.3f} s; replaced workers {sorted(replaced)} gone {gone:.3f} s after it completed", flush=True)
    return gone

def upgrade(name):
    """Runs `lancelot upgrade` and returns how long the old supervisor and
    its workers outlived its completion (the command returning)."""
    spid = supervisor()
    old = [spid] + children(spid)
    t0 = time.monotonic()
    subprocess.run([binary, "upgrade", "--pid-file", pidfile], check=True, capture_output=True)
    t1 = time.monotonic()
    gone = outlived(old, t1, 60)
    print(f"  {name}: upgrade {t1 - t0:.3f} s; old generation {old} gone {gone:.3f} s after it completed", flush=True)
    return gone

async def ask(r, w):
    w.write(Q)
    return await asyncio.wait_for(r.readuntil(b"."), 5)

async def persistent(ops, what):
    """200 clients ask a question every 200 ms on their own connection,
    and reconnect when the server closes it, while each of ops (a
    blocking function that returns how long the processes it replaced
    outlived it) runs in turn."""
    closed, asked = 0, 0
    stop = asyncio.Event()
    async def client():
        nonlocal closed, asked
        r, w = await asyncio.open_connection("127.0.0.1", port)
        while not stop.is_set():
            try:
                a = await ask(r, w)
                assert a == A, a
                asked += 1
            except Exception:
                closed += 1
                r, w = await asyncio.open_connection("127.0.0.1", port)
            await asyncio.sleep(0.2)
        w.close()
    tasks = [asyncio.create_task(client()) for _ in range(200)]
    await asyncio.sleep(1)
    worst = 0
    for op in ops:
        worst = max(worst, await asyncio.to_thread(op))
        await asyncio.sleep(0.5)
    await asyncio.sleep(1)
    stop.set()
    await asyncio.gather(*tasks)
    print(f"RESULT {what}: 200 clients, {asked} questions answered, connections closed by the server: {closed}; {'old generation' if 'upgrade' in what else 'replaced workers'} gone at worst {worst:.3f} s after {'an upgrade' if 'upgrade' in what else 'an operation'} completed")

async def idle(n, sig, name):
    conns = []
    for i in range(n):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        assert await ask(r, w) == A
        conns.append((r, w))
    gone = await asyncio.to_thread(operation, sig, name)
    if sig == 21:
        await asyncio.sleep(2)
        out = subprocess.run(["ss", "-Htnp", "state", "established", f"sport = :{port}"], capture_output=True, text=True).stdout
        held = {}
        for m in re.finditer(r"pid=(\d+),", out):
            held[int(m.group(1))] = held.get(int(m.group(1)), 0) + 1
        new = max(children(supervisor()))
        print(f"RESULT ttin: {n} idle connections, 2 s after TTIN completed: per worker {held}; new worker {new} holds {held.get(new, 0) / n:.1%}")
    ok = 0
    for r, w in conns:
        try:
            if await ask(r, w) == A:
                ok += 1
        except Exception:
            pass
        w.close()
    with open(log) as f:
        handed = sum(int(x) for x in re.findall(r"handed_over=(\d+)", f.read()))
    if sig == 1:
        print(f"RESULT idle reload: {n} idle connections, handed over {handed}, old workers gone {gone:.3f} s after the reload completed, {ok} of {n} answer afterwards")
    else:
        print(f"  afterwards {ok} of {n} answer; handed over {handed}")

if mode == "persistent":
    ops = [lambda i=i: operation(1, f"reload {i + 1}") for i in range(10)]
    ops += [lambda: operation(22, "TTOU 2->1"), lambda: operation(21, "TTIN 1->2")]
    asyncio.run(persistent(ops, "persistent"))
elif mode == "idle":
    asyncio.run(idle(10000, 1, "reload"))
elif mode == "ttin":
    asyncio.run(idle(1000, 21, "TTIN 1->2"))
elif mode == "upgrades":
    asyncio.run(persistent([lambda i=i: upgrade(f"upgrade {i + 1}") for i in range(3)], "upgrade persistent"))
else:
    upgrade("upgrade")
PY
client() { python3 "$WORK/client.py" "$1" "$PORT" "$WORK/log" "$WORK/pid" "$BIN"; }

echo "== 200 persistent clients through 10 reloads, a TTOU and a TTIN (--workers 2)"
serve --workers 2
client persistent
grep -c 'msg="connections handed over"' "$WORK/log" | sed 's/^/  handover log lines: /'
stop

echo "== 10,000 idle connections across one reload (--workers 2)"
serve --workers 2
client idle
stop

echo "== TTIN from 1 to 2 workers with 1,000 idle connections"
serve --workers 1
client ttin
stop

# stop_current stops the supervisor the pid file names (the last upgrade's).
stop_current() {
	local pid
	pid=$(cat "$WORK/pid" 2>/dev/null) || return 0
	STARTED_PIDS+=("$pid")
	kill_tree "$pid"
}
trap 'stop_current; cleanup' EXIT

echo "== 200 persistent clients through 3 binary upgrades of the same build (--workers 2)"
serve --workers 2
client upgrades
grep 'reason=upgrade' "$WORK/log" | grep -c 'msg="connections handed over"' | sed 's/^/  handover log lines: /'
stop_current
stop

echo "== 50,000 idle connections across one binary upgrade (--workers 5)"
serve --workers 5
"$BIN" bench --server 127.0.0.1:$PORT --mode idle -c 50000 --duration 40s --json >"$WORK/idle.json" 2>"$WORK/bench.err" &
BENCH=$!
STARTED_PIDS+=("$BENCH")
for ((i = 0; i < 1200; i++)); do
	held=$(ss -Htn state established "sport = :$PORT" | wc -l)
	((held >= 50000)) && break
	sleep 0.1
done
echo "  established before the upgrade: $held"
out=$(client once)
echo "$out"
gone=$(grep -o 'gone [0-9.]*' <<<"$out" | cut -d' ' -f2)
wait "$BENCH" || true
handed=$(grep 'reason=upgrade' "$WORK/log" | grep -o 'handed_over=[0-9]*' | cut -d= -f2 | paste -sd+ | bc)
python3 - "$WORK/idle.json" "$handed" "$gone" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
errors = {k: v for k, v in (r.get("errors") or {}).items() if v}
print(f"RESULT idle upgrade: 50000 idle connections, handed over {sys.argv[2]} (with the bench's latency probes), still open at the end {r.get('idle_held')}, old generation gone {float(sys.argv[3]):.3f} s after the upgrade completed; errors {errors or 'none'}")
PY
stop_current
stop
