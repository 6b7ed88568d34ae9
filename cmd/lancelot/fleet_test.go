package main

// Fleet tests: lancelot hosts behind HAProxy (configs/haproxy.cfg), each
// host a network namespace (netns_test.go), under 16 book-style clients,
// while an operator rolls a restart, an upgrade or a reload across the
// fleet. Every case but the control must cost no client a single exchange.
//
// Each case logs one line for docs/bench/fleet.sh:
//
//	fleet-result test=TestFleetX scenario=NAME hosts=3 agent=on proxy=v2 load=10s passes=1 exchanges=N failures=N errors=KIND:N,... p50_us=N p99_us=N max_us=N haproxy_retries=N haproxy_redispatches=N
//
// LANCELOT_FLEET_DURATION (e.g. 60s) makes every load that long at least;
// the operation is then repeated for as long as the load lasts. Every case
// runs the hosts with each feature the binary has (agent and drain delay,
// PROXY v2, `lancelot reload`, found in its --help); LANCELOT_FLEET_FEATURES
// (a list of agent, proxy, reload; empty for none) narrows that down. A
// case that needs a feature the binary lacks fails saying which.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camelot/lancelot/cmd/internal/loadgen"
	"github.com/camelot/lancelot/cmd/internal/proc"
	"github.com/camelot/lancelot/shared/lancelottest"
)

// fleetDrainDelay is the hosts' --drain-delay: 2 x agent-inter, as
// configs/haproxy.cfg says.
const fleetDrainDelay = time.Second

// fleetSetup returns the options of a fleet running every feature the
// binary has (less those LANCELOT_FLEET_FEATURES leaves out), and the
// features.
func fleetSetup(t *testing.T) (fleetOptions, fleetFeatures) {
	t.Helper()
	feats := detectFeatures(t, binPath)
	if v, ok := os.LookupEnv("LANCELOT_FLEET_FEATURES"); ok {
		use := strings.Split(v, ",")
		feats.agent = feats.agent && slices.Contains(use, "agent")
		feats.drain = feats.drain && slices.Contains(use, "agent")
		feats.proxy = feats.proxy && slices.Contains(use, "proxy")
		feats.reload = feats.reload && slices.Contains(use, "reload")
	}
	return fleetOptions{agent: feats.agent && feats.drain, drainDelay: fleetDrainDelay, proxy: feats.proxy}, feats
}

// requireFeature fails a case whose flags are not there yet.
func requireFeature(t *testing.T, have bool, what string) {
	t.Helper()
	if !have {
		t.Fatalf("flag not supported: lancelot serve (%s) has no %s yet, or LANCELOT_FLEET_FEATURES=%q leaves it out; this case passes once it lands",
			binPath, what, os.Getenv("LANCELOT_FLEET_FEATURES"))
	}
}

// TestFleetRollingTermNoDrain: the rolling restart of
// TestFleetRollingTermDrain with lancelot's agent and drain delay off, on
// the example configuration as it is. A host refuses new connections at
// once on TERM while HAProxy, which learns it only from failed checks
// (~1 s), keeps sending; "retries 3" with "option redispatch 1" send each
// refused connect to another host. So HAProxy must have retried; the
// clients' failures are logged, not asserted: a SYN that reaches a
// listening socket in the microseconds between a worker's last accept and
// the socket's close is reset, not refused, and no retry saves that one.
func TestFleetRollingTermNoDrain(t *testing.T) {
	skipIfShort(t)
	opts, _ := fleetSetup(t)
	opts.agent = false
	f := newFleet(t, opts)
	f.underLoad("rolling-term-no-drain", 8*time.Second, f.rollingRestart)
	if n := f.retries(); n == 0 {
		t.Errorf("HAProxy retried no connection: a host that stops at once on TERM should have refused some")
	}
}

// TestFleetRollingTermNoDrainControl is the control: the same with
// "retries 0", so that a connect refused by a stopping host fails its
// client. Clients must fail: it proves the suite sees failures.
func TestFleetRollingTermNoDrainControl(t *testing.T) {
	skipIfShort(t)
	opts, _ := fleetSetup(t)
	opts.agent = false
	opts.edits = map[string]string{"retries 3": "retries 0"}
	f := newFleet(t, opts)
	r := f.underLoad("control-term-no-drain-retries-0", 8*time.Second, f.rollingRestart)
	if r.ErrorCount() == 0 {
		t.Errorf("0 failures in %d exchanges: a TERM without drain delay or retries should fail clients", r.Exchanges)
	}
}

// TestFleetRollingTermDrain: TERM one host at a time; its agent says
// "drain", it serves on for --drain-delay, exits, is started again, and
// HAProxy has it UP before the next host is stopped. HAProxy must never
// have sent a connection to a stopped host: no client failure, and no
// retry either (retries would hide failures).
func TestFleetRollingTermDrain(t *testing.T) {
	skipIfShort(t)
	opts, feats := fleetSetup(t)
	requireFeature(t, feats.agent && feats.drain, "--agent-listen and --drain-delay")
	f := newFleet(t, opts)
	r := f.underLoad("rolling-term-drain", 9*time.Second, f.rollingRestart)
	f.requireClean(r)
}

// TestFleetRollingUpgrade: USR2 one host at a time (the binary on disk is
// the same one), waiting for the new supervisor to take over and the old
// one to exit. The listening sockets pass from one supervisor to the next,
// so HAProxy must not even have had to retry.
func TestFleetRollingUpgrade(t *testing.T) {
	skipIfShort(t)
	opts, _ := fleetSetup(t)
	f := newFleet(t, opts)
	r := f.underLoad("rolling-usr2", 6*time.Second, func() {
		for _, h := range f.hosts {
			old := h.signal(syscall.SIGUSR2)
			lancelottest.WaitFor(t, 15*time.Second, h.name+": pid file names the new supervisor", func() bool {
				pid := h.pid()
				return pid > 0 && pid != old
			})
			h.waitGone(old, 30*time.Second)
			f.waitInRotation(h, 10*time.Second)
		}
	})
	f.requireClean(r)
}

// TestFleetReload: reload every host, one after the other, with `lancelot
// reload` where the binary has it, else HUP; either way every worker must
// be replaced, and no client fail nor HAProxy retry.
func TestFleetReload(t *testing.T) {
	skipIfShort(t)
	opts, feats := fleetSetup(t)
	f := newFleet(t, opts)
	r := f.underLoad("reload", 5*time.Second, func() {
		for _, h := range f.hosts {
			pid := h.pid()
			before := proc.Children(pid)
			if feats.reload {
				h.reloadCommand()
			} else {
				h.signal(syscall.SIGHUP)
			}
			lancelottest.WaitFor(t, 15*time.Second, h.name+": every worker replaced", func() bool {
				now := proc.Children(pid)
				return len(now) == fleetWorkers && len(common(now, before)) == 0
			})
			f.waitInRotation(h, 10*time.Second)
		}
	})
	f.requireClean(r)
}

// TestFleetProxyV2: HAProxy sends a PROXY v2 header on every connection and
// every health check; lancelot accepts both and logs the client's address
// (the bench's 127.0.0.1 in the balancer's namespace) as client=, and
// HAProxy's own address as peer=. No client fails, no connect is retried.
func TestFleetProxyV2(t *testing.T) {
	skipIfShort(t)
	opts, feats := fleetSetup(t)
	requireFeature(t, feats.proxy, "--proxy-protocol and --proxy-allow-from")
	opts.debugLog = true // a line per connection, the unknown question's included
	f := newFleet(t, opts)
	const q = "What is the air-speed velocity of an unladen swallow?"
	r := f.underLoad("proxy-v2", 5*time.Second, func() {
		if out, err := f.ask(q); err == nil {
			t.Errorf("ask %q through HAProxy: %q, exit 0; want the connection closed (unknown question)", q, out)
		}
		line := f.waitHostLog("swallow", 5*time.Second)
		if !strings.Contains(line, "client=127.0.0.1") || !strings.Contains(line, "peer="+fleetLB) {
			t.Errorf("log line of the unknown question: %q; want client=127.0.0.1 and peer=%s", line, fleetLB)
		}
	})
	f.requireClean(r)
}

// rollingRestart stops each host with TERM, waits for it to exit and for
// HAProxy to take it out, starts it again and waits until HAProxy has it
// UP, then goes on to the next host.
func (f *fleet) rollingRestart() {
	f.t.Helper()
	for _, h := range f.hosts {
		pid := h.signal(syscall.SIGTERM)
		h.waitGone(pid, 20*time.Second)
		f.waitOutOfRotation(h, 5*time.Second)
		h.launch()
		h.waitReady()
		f.waitInRotation(h, 10*time.Second)
	}
}

// reloadCommand runs `lancelot reload --pid-file F` in the host's
// namespace; it returns once the reload finished.
func (h *fleetHost) reloadCommand() {
	h.f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", h.ns, h.f.bin, "reload", "--pid-file", h.pidFile).CombinedOutput()
	if err != nil {
		h.f.t.Fatalf("%s: lancelot reload: %v\n%s", h.name, err, out)
	}
}

// waitHostLog returns the first line of any host's log that holds substr.
func (f *fleet) waitHostLog(substr string, timeout time.Duration) string {
	f.t.Helper()
	var line string
	lancelottest.WaitFor(f.t, timeout, fmt.Sprintf("a host log line with %q", substr), func() bool {
		for _, h := range f.hosts {
			b, _ := os.ReadFile(h.logPath)
			for _, l := range strings.Split(string(b), "\n") {
				if strings.Contains(l, substr) {
					line = l
					return true
				}
			}
		}
		return false
	})
	return line
}

// underLoad runs a book-style load through HAProxy and, once it flows,
// runs pass, again and again (1 s of plain load between two) while the
// load is younger than min (LANCELOT_FLEET_DURATION, if longer) and one
// more pass, allowing it twice the time of the last, fits in it. The load
// then runs until the last pass ended plus fleetLoadMargin, and at least
// min, however long the passes took (a pass takes several times longer on
// a busy machine), within fleetLoadBound: the load stops relative to the
// operation's end, not at a fixed time. It logs the result as a
// fleet-result line and returns it.
func (f *fleet) underLoad(scenario string, min time.Duration, pass func()) loadgen.Result {
	t := f.t
	t.Helper()
	d := fleetDuration(t, min)
	before := f.frontendSessions()
	start := time.Now()
	b := f.startBench(d + fleetLoadBound)
	lancelottest.WaitFor(t, 10*time.Second, "load flowing through HAProxy", func() bool { return f.frontendSessions() >= before+200 })
	passes := 0
	for passes < 1000 {
		began := time.Now()
		pass()
		passes++
		took := time.Since(began)
		t.Logf("%s: pass %d took %v", scenario, passes, took.Round(time.Millisecond))
		if time.Since(start)+time.Second+2*took > d { // the pause, then the next pass
			break
		}
		time.Sleep(time.Second) // the plain load between two passes, not a wait
	}
	stopAt := time.Now().Add(fleetLoadMargin)
	if end := start.Add(d); end.After(stopAt) {
		stopAt = end
	}
	r := f.stopBench(b, stopAt)
	f.logResult(scenario, time.Since(start).Round(time.Millisecond), passes, r)
	return r
}

const (
	// fleetLoadMargin is the load a fleet test keeps after its operation:
	// clients that a last step failed are seen failing.
	fleetLoadMargin = time.Second
	// fleetLoadBound bounds how far a load runs past its minimum: the
	// operation must end (plus the margin) within it.
	fleetLoadBound = 3 * time.Minute
)

// stopBench ends a bench started by startBench at stopAt with SIGINT
// (it then reports what it has) and returns its result. A bench that
// ended by itself before, at its bound, fails the test: its load did not
// cover the operation plus its margin.
func (f *fleet) stopBench(p *harnessProc, stopAt time.Time) loadgen.Result {
	f.t.Helper()
	select {
	case <-p.exited:
		f.t.Errorf("the load ended by itself before the operation ended plus %v: raise fleetLoadBound (%v)", fleetLoadMargin, fleetLoadBound)
	case <-time.After(time.Until(stopAt)):
		// Its own process group: the bench and any child it split the
		// load into, which ignore INT and stop when the bench does.
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGINT)
	}
	return f.benchResult(p, 30*time.Second)
}

// fleetDuration is LANCELOT_FLEET_DURATION, or min if that is unset or
// shorter.
func fleetDuration(t *testing.T, min time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv("LANCELOT_FLEET_DURATION")
	if v == "" {
		return min
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("LANCELOT_FLEET_DURATION=%q: %v", v, err)
	}
	return max(d, min)
}

// logResult logs the fleet-result line (see the top of the file).
func (f *fleet) logResult(scenario string, d time.Duration, passes int, r loadgen.Result) {
	var kinds []string
	for _, k := range loadgen.Kinds() {
		if n := r.Errors[k]; n > 0 {
			kinds = append(kinds, fmt.Sprintf("%s:%d", k, n))
		}
	}
	errs := strings.Join(kinds, ",")
	if errs == "" {
		errs = "none"
	}
	onOff := map[bool]string{true: "on", false: "off"}
	proxy := map[bool]string{true: "v2", false: "off"}
	var backend map[string]string
	if st, err := f.stats(); err == nil {
		backend = st["BACKEND"]
	}
	f.t.Logf("fleet-result test=%s scenario=%s hosts=%d agent=%s proxy=%s load=%v passes=%d exchanges=%d failures=%d errors=%s p50_us=%d p99_us=%d max_us=%d haproxy_retries=%s haproxy_redispatches=%s",
		f.t.Name(), scenario, len(f.hosts), onOff[f.opts.agent], proxy[f.opts.proxy], d, passes, r.Exchanges, r.ErrorCount(), errs,
		r.Latency.P50, r.Latency.P99, r.Latency.Max, backend["wretr"], backend["wredis"])
}

// retries is how many connects HAProxy's backend retried or redispatched.
func (f *fleet) retries() int {
	f.t.Helper()
	st, err := f.stats()
	if err != nil {
		f.t.Fatalf("HAProxy stats: %v", err)
	}
	var retr, redis int
	fmt.Sscan(st["BACKEND"]["wretr"], &retr)
	fmt.Sscan(st["BACKEND"]["wredis"], &redis)
	return retr + redis
}

// requireClean fails the test if a client failed or if HAProxy had to
// retry a connect: retries hide a host that refused connections.
func (f *fleet) requireClean(r loadgen.Result) {
	f.t.Helper()
	if n := r.ErrorCount(); n > 0 {
		f.t.Errorf("%d client failures in %d exchanges (%v); want none", n, r.Exchanges, r.Errors)
	}
	if n := f.retries(); n > 0 {
		f.t.Errorf("HAProxy retried or redispatched %d connects: a host refused connections; want none", n)
	}
}

// TestFleetConfigMatchesExample: the fleet's HAProxy runs
// configs/haproxy.cfg line for line, only addresses, ports and the log
// target changed; the file has the settings lancelot relies on, and
// HAProxy accepts it (haproxy -c).
func TestFleetConfigMatchesExample(t *testing.T) {
	example := exampleConfig(t)
	lines := directives(example)
	for _, want := range []string{
		"mode tcp", "retries 3", "option redispatch 1", "timeout connect 2s", "timeout client 6m", "timeout server 6m",
		"bind :1060", "balance roundrobin", "option tcp-check", "tcp-check connect default",
		`tcp-check send "What is your name?"`, `tcp-check expect string "My name is Sir Lancelot of Camelot."`,
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("configs/haproxy.cfg has no line %q", want)
		}
	}
	const serverOpts = "check inter 500ms fall 2 rise 2 agent-check agent-port 1061 agent-inter 500ms weight 100 send-proxy-v2 check-send-proxy"
	for _, l := range lines {
		if f := strings.Fields(l); f[0] == "server" && strings.Join(f[3:], " ") != serverOpts {
			t.Errorf("configs/haproxy.cfg: %q; want the options %q", l, serverOpts)
		}
	}
	servers := []string{"10.200.0.11:1060", "10.200.0.12:1060", "10.200.0.13:1060"}
	p := haproxyParams{statsSock: t.TempDir() + "/haproxy.sock", bind: "127.0.0.1:1060", servers: servers, proxy: true}
	gen, err := haproxyConfig(example, p)
	if err != nil {
		t.Fatal(err)
	}
	compareDirectives(t, lines, directives(gen))
	if strings.Contains(gen, "10.0.0.") {
		t.Errorf("generated config still names a placeholder host:\n%s", gen)
	}
	p.proxy = false
	plain, err := haproxyConfig(example, p)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.ReplaceAll(gen, " send-proxy-v2 check-send-proxy", ""); plain != want {
		t.Errorf("without PROXY the config differs by more than send-proxy-v2 check-send-proxy:\n%s\nwant\n%s", plain, want)
	}
	haproxy := requireTool(t, "haproxy")
	dir := t.TempDir()
	for name, cfg := range map[string]string{"example": example, "generated": gen, "generated-plain": plain} {
		path := dir + "/" + name + ".cfg"
		writeFile(t, path, cfg)
		if out, err := exec.Command(haproxy, "-c", "-f", path).CombinedOutput(); err != nil {
			t.Errorf("haproxy -c -f %s (%s): %v\n%s", path, name, err, out)
		}
	}
}

// compareDirectives checks gen is example line for line but for the lines
// haproxyConfig replaces, and that those keep everything but addresses.
func compareDirectives(t *testing.T, example, gen []string) {
	t.Helper()
	if len(example) != len(gen) {
		t.Fatalf("generated config has %d lines, the example %d:\n%s", len(gen), len(example), strings.Join(gen, "\n"))
	}
	for i := range example {
		e, g := strings.Fields(example[i]), strings.Fields(gen[i])
		ok := example[i] == gen[i]
		if !ok && e[0] == g[0] {
			short := len(e) < 3 || len(g) < 3
			switch e[0] {
			case "log", "bind": // the target, the address
				ok = true
			case "stats": // stats socket PATH OPTIONS
				ok = !short && e[1] == g[1] && slices.Equal(e[3:], g[3:])
			case "server": // server NAME ADDR OPTIONS
				ok = !short && slices.Equal(e[3:], g[3:])
			}
		}
		if !ok {
			t.Errorf("line %d: example %q, generated %q: only an address may change", i+1, example[i], gen[i])
		}
	}
}

// directives are a configuration's lines without comments, blank lines
// and extra blanks.
func directives(cfg string) []string {
	var out []string
	for _, l := range strings.Split(cfg, "\n") {
		if l = strings.Join(strings.Fields(l), " "); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}
