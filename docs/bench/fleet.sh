#!/usr/bin/env bash
# fleet.sh: lancelot hosts behind HAProxy (configs/haproxy.cfg), each host a
# network namespace of its own, under 16 book-style clients while a restart,
# an upgrade or a reload rolls across the fleet. Runs the fleet tests
# (cmd/lancelot/fleet_test.go) with every load DURATION long at least (the
# operation repeats for as long as the load lasts) and prints one row per
# scenario: exchanges, client failures by kind, latency, and how many
# connects HAProxy had to retry or redispatch.
#
# Needs root, ip(8) and haproxy (Debian: iproute2, haproxy). Traffic stays
# on the loopback of the balancer's namespace and on 10.200.0.0/24 between
# namespaces the tests create and delete; nothing is routed out.
#
# usage: docs/bench/fleet.sh [DURATION]   (Go duration: 60s, 5m; default 60s)
# env:   LANCELOT_BIN=<binary>  measure that binary instead of the work tree's
#        LANCELOT_FLEET_FEATURES=agent,proxy,reload  the features to use, of
#          those the binary has (default: all; empty: none)
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${1:-60s}

# seconds DURATION: a Go duration of one unit (90s, 5m, 1h) in seconds.
seconds() {
	case $1 in
	*ms) echo 1 ;;
	*s) echo "${1%s}" ;;
	*m) echo $((${1%m} * 60)) ;;
	*h) echo $((${1%h} * 3600)) ;;
	*) echo "fleet.sh: DURATION $1: want e.g. 60s, 5m or 1h" >&2; return 1 ;;
	esac
}
secs=$(seconds "$DURATION")
# Six loaded cases, each with up to a minute of setup, drain and teardown.
timeout=$((6 * (secs + 60) + 120))

OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT

status=0
# The tests take the binary under test as LANCELOT_TEST_BIN.
LANCELOT_TEST_BIN=${LANCELOT_BIN:-${LANCELOT_TEST_BIN:-}} LANCELOT_FLEET_DURATION=$DURATION go test -count=1 -timeout "${timeout}s" -run '^TestFleet' -v ./cmd/lancelot >"$OUT" 2>&1 || status=$?

awk '
/fleet-result / {
	delete kv
	for (i = 1; i <= NF; i++) if (split($i, p, "=") == 2) kv[p[1]] = p[2]
	order[++n] = kv["test"]
	row[kv["test"]] = sprintf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s/%s |",
		kv["scenario"], kv["agent"], kv["proxy"], kv["load"], kv["passes"], kv["exchanges"], kv["failures"],
		kv["errors"], kv["p50_us"], kv["p99_us"], kv["max_us"], kv["haproxy_retries"], kv["haproxy_redispatches"])
}
/^--- (PASS|FAIL|SKIP): TestFleet/ { v = $2; sub(/:$/, "", v); verdict[$3] = v }
/flag not supported|fleet tests need root|not found/ { sub(/^ +/, ""); note[++m] = $0 }
END {
	print "| scenario | agent | proxy | load | passes | exchanges | failures | by kind | p50 µs | p99 µs | max µs | HAProxy retries/redispatches | test |"
	print "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
	for (i = 1; i <= n; i++) { t = order[i]; print row[t] " " verdict[t] " |"; seen[t] = 1 }
	for (t in verdict) if (!(t in seen)) printf "%s: %s (no load run)\n", t, verdict[t]
	for (i = 1; i <= m; i++) print "  " note[i]
}' "$OUT"

if [[ $status -ne 0 ]]; then
	echo "go test exited $status; its output:" >&2
	grep -v 'level=' "$OUT" | tail -40 >&2
fi
exit "$status"
