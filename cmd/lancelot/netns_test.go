package main

// The fleet harness: HAProxy in front of several lancelot hosts, each host a
// network namespace of its own, all made by the test and deleted when it
// ends, also when it fails. Names carry a random id, so two runs never meet:
//
//	lcl-ID-lb   lo: 127.0.0.1:1060, HAProxy's frontend, and the bench
//	            br0: 10.200.0.1/24, HAProxy's side of the hosts' network
//	              eth-h1 <-veth-> eth0 10.200.0.11/24 in lcl-ID-h1 (lancelot :1060, agent :1061)
//	              eth-h2 <-veth-> eth0 10.200.0.12/24 in lcl-ID-h2
//	              ...
//
// Nothing is routed out: no namespace has a default route, and none has a
// link to the machine's own interfaces (every veth is made inside the
// namespaces). bench refuses non-loopback targets, hence the bench in lb.
//
// HAProxy's configuration is configs/haproxy.cfg with its addresses, ports
// and log target replaced (haproxyConfig); every other line is the file's.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camelot/lancelot/cmd/internal/loadgen"
	"github.com/camelot/lancelot/cmd/internal/proc"
	"github.com/camelot/lancelot/shared/lancelottest"
)

const (
	fleetPort      = 1060 // lancelot and HAProxy's frontend, as in configs/haproxy.cfg
	fleetAgentPort = 1061 // agent-port in configs/haproxy.cfg
	fleetLB        = "10.200.0.1"
	fleetWorkers   = 2
	fleetClients   = 16 // bench -c
)

// fleetHostAddr is host i's (from 0) address: 10.200.0.11, .12, ...
func fleetHostAddr(i int) string { return fmt.Sprintf("10.200.0.%d", 11+i) }

// fleetOptions says what a fleet runs.
type fleetOptions struct {
	hosts int // lancelot hosts; default 3
	// agent runs lancelot with --agent-listen and drainDelay as
	// --drain-delay. HAProxy always has the file's agent-check: an agent
	// port that refuses is no failure to HAProxy, only no agent.
	agent      bool
	drainDelay time.Duration
	// proxy keeps the file's send-proxy-v2 check-send-proxy and runs
	// lancelot with --proxy-protocol v2; without it both are dropped.
	proxy bool
	// debugLog runs lancelot with --log-level debug, which logs every
	// connection (the default level only summarizes client errors).
	debugLog bool
	// edits replaces lines of the file (a control case's handicap): line
	// as written (blanks collapsed) -> replacement, "" to leave it out.
	edits map[string]string
}

// fleetFeatures is what the binary under test supports, from its --help.
type fleetFeatures struct {
	agent, drain, proxy, reload bool
}

func detectFeatures(t testing.TB, bin string) fleetFeatures {
	t.Helper()
	serve, err := exec.Command(bin, "serve", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("%s serve --help: %v\n%s", bin, err, serve)
	}
	top, _ := exec.Command(bin, "--help").CombinedOutput()
	s := string(serve)
	return fleetFeatures{
		agent:  strings.Contains(s, "--agent-listen"),
		drain:  strings.Contains(s, "--drain-delay"),
		proxy:  strings.Contains(s, "--proxy-protocol") && strings.Contains(s, "--proxy-allow-from"),
		reload: regexp.MustCompile(`(?m)^\s+reload\b`).Match(top),
	}
}

// skipOrFail skips, or fails under LANCELOT_REQUIRE_TOOLS=1 (as .ci/run sets).
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("LANCELOT_REQUIRE_TOOLS") == "1" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// fleet is one balancer and its hosts.
type fleet struct {
	t         *testing.T
	bin       string
	opts      fleetOptions
	id        string
	dir       string
	lb        string   // the balancer's namespace
	made      []string // namespaces created, for the teardown
	statsSock string
	haproxy   *harnessProc
	hosts     []*fleetHost
	benches   []*harnessProc
}

// harnessProc is a process the harness started, and how it ended.
type harnessProc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

func startProc(cmd *exec.Cmd) (*harnessProc, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &harnessProc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// kill kills p (its process group, if it has one) and reaps it.
func (p *harnessProc) kill() {
	pid := p.cmd.Process.Pid
	if p.cmd.SysProcAttr != nil && p.cmd.SysProcAttr.Setpgid {
		syscall.Kill(-pid, syscall.SIGKILL)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
	}
}

// newFleet builds the namespaces, starts the hosts and HAProxy, and waits
// until HAProxy has every host UP. Everything is torn down when t ends.
func newFleet(t *testing.T, opts fleetOptions) *fleet {
	t.Helper()
	requireTool(t, "ip")
	requireTool(t, "haproxy")
	if os.Geteuid() != 0 {
		skipOrFail(t, "fleet tests need root to create network namespaces")
	}
	if opts.hosts <= 0 {
		opts.hosts = 3
	}
	f := &fleet{t: t, bin: binPath, opts: opts, id: randomID(t), dir: t.TempDir()}
	f.lb = "lcl-" + f.id + "-lb"
	f.statsSock = filepath.Join(f.dir, "haproxy.sock")
	t.Cleanup(f.teardown)
	if err := f.makeNetwork(); err != nil {
		skipOrFail(t, "cannot build the fleet's network namespaces: %v", err)
	}
	for i := range opts.hosts {
		h := &fleetHost{f: f, name: fmt.Sprintf("h%d", i+1), addr: fleetHostAddr(i)}
		h.ns = "lcl-" + f.id + "-" + h.name
		h.pidFile = filepath.Join(f.dir, h.name+".pid")
		h.logPath = filepath.Join(f.dir, h.name+".log")
		f.hosts = append(f.hosts, h)
		h.launch()
	}
	for _, h := range f.hosts {
		h.waitReady()
	}
	f.startHAProxy()
	for _, h := range f.hosts {
		f.waitInRotation(h, 10*time.Second)
	}
	return f
}

func randomID(t testing.TB) string {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// ip runs ip(8) with args.
func ip(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// makeNetwork creates the namespaces, the bridge and the veth pairs (see
// the top of the file), and checks that no namespace has a default route.
func (f *fleet) makeNetwork() error {
	steps := [][]string{{"netns", "add", f.lb}}
	lb := func(args ...string) []string { return append([]string{"-n", f.lb}, args...) }
	steps = append(steps,
		lb("link", "set", "lo", "up"),
		lb("link", "add", "br0", "type", "bridge"),
		lb("addr", "add", fleetLB+"/24", "dev", "br0"),
		lb("link", "set", "br0", "up"),
		// HAProxy opens a connection to a host per client connection and
		// closes it first, so its side keeps each in TIME_WAIT for 60 s: with
		// the default 28k ports a long load would run out of them.
		[]string{"netns", "exec", f.lb, "sysctl", "-q", "-w",
			"net.ipv4.ip_local_port_range=10000 65535", "net.ipv4.tcp_tw_reuse=1"})
	for i := range f.opts.hosts {
		ns := fmt.Sprintf("lcl-%s-h%d", f.id, i+1)
		veth := fmt.Sprintf("eth-h%d", i+1)
		steps = append(steps, []string{"netns", "add", ns},
			lb("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns),
			lb("link", "set", veth, "master", "br0"),
			lb("link", "set", veth, "up"),
			[]string{"-n", ns, "link", "set", "lo", "up"},
			[]string{"-n", ns, "addr", "add", fleetHostAddr(i) + "/24", "dev", "eth0"},
			[]string{"-n", ns, "link", "set", "eth0", "up"})
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			return err
		}
		if s[0] == "netns" && s[1] == "add" {
			f.made = append(f.made, s[2])
		}
	}
	for _, ns := range f.made {
		out, err := exec.Command("ip", "-n", ns, "route", "show", "default").CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			return fmt.Errorf("namespace %s: default route %q, %v: want none", ns, out, err)
		}
	}
	return nil
}

// teardown kills every process the fleet started, then any process left
// in its namespaces, deletes the namespaces, and checks none is left.
func (f *fleet) teardown() {
	t := f.t
	if t.Failed() {
		f.logTails()
	}
	for _, b := range f.benches {
		b.kill()
	}
	for _, h := range f.hosts {
		h.killAll()
	}
	if f.haproxy != nil {
		f.haproxy.kill()
	}
	for _, ns := range f.made {
		if left := killNamespacePIDs(ns); left > 0 {
			t.Errorf("namespace %s: %d processes still there after SIGKILL", ns, left)
		}
		if err := ip("netns", "del", ns); err != nil {
			t.Errorf("teardown: %v", err)
		}
	}
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Errorf("ip netns list: %v", err)
	}
	if strings.Contains(string(out), "lcl-"+f.id+"-") {
		t.Errorf("namespaces left after the teardown:\n%s", out)
	}
}

// killNamespacePIDs SIGKILLs every process in ns (all of them ours: the
// namespace is) until none is left, and returns how many are left after 5 s.
func killNamespacePIDs(ns string) int {
	var pids []string
	for range 50 {
		out, _ := exec.Command("ip", "netns", "pids", ns).Output()
		if pids = strings.Fields(string(out)); len(pids) == 0 {
			return 0
		}
		for _, p := range pids {
			var pid int
			if _, err := fmt.Sscan(p, &pid); err == nil && pid > 1 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return len(pids)
}

// logTails logs the end of HAProxy's and every host's log.
func (f *fleet) logTails() {
	paths := []string{filepath.Join(f.dir, "haproxy.log")}
	for _, h := range f.hosts {
		paths = append(paths, h.logPath)
	}
	for _, p := range paths {
		b, _ := os.ReadFile(p)
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		f.t.Logf("last lines of %s:\n%s", filepath.Base(p), strings.Join(lines[max(0, len(lines)-25):], "\n"))
	}
}

// inNamespace is a command that runs name args... in namespace ns.
func inNamespace(ns, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// haproxyParams are what haproxyConfig replaces in configs/haproxy.cfg.
type haproxyParams struct {
	statsSock string            // stats socket path
	bind      string            // frontend address
	servers   []string          // server addresses, host:port, named h1, h2, ...
	proxy     bool              // keep send-proxy-v2 and check-send-proxy
	edits     map[string]string // see fleetOptions.edits
}

// haproxyConfig returns the example configuration with only its addresses,
// ports and log target replaced: the log goes to stdout, the stats socket
// to p.statsSock, the frontend binds p.bind, and the example's servers (all
// with the same options) become p.servers with those options. It drops
// comments and blank lines.
func haproxyConfig(example string, p haproxyParams) (string, error) {
	var out []string
	var opts []string // the example's server options
	section := ""
	for _, line := range strings.Split(example, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if repl, ok := p.edits[strings.Join(fields, " ")]; ok {
			if line, fields = repl, strings.Fields(repl); line == "" {
				continue
			}
		}
		switch {
		case isSection(fields[0]):
			section = fields[0]
			out = append(out, line)
			continue
		case section == "global" && fields[0] == "log":
			line = "log stdout format raw local0"
		case section == "global" && len(fields) > 2 && fields[0] == "stats" && fields[1] == "socket":
			line = strings.Join(append([]string{"stats", "socket", p.statsSock}, fields[3:]...), " ")
		case section == "frontend" && fields[0] == "bind":
			line = strings.Join(append([]string{"bind", p.bind}, fields[2:]...), " ")
		case section == "backend" && fields[0] == "server":
			if len(fields) < 3 {
				return "", fmt.Errorf("server line %q: want server NAME ADDR OPTIONS", line)
			}
			if opts == nil {
				opts = fields[3:]
				for i, addr := range p.servers {
					out = append(out, "    "+strings.Join(append([]string{"server", fmt.Sprintf("h%d", i+1), addr},
						serverOptions(opts, p.proxy)...), " "))
				}
			} else if strings.Join(fields[3:], " ") != strings.Join(opts, " ") {
				return "", fmt.Errorf("server %s has options %q, the first server %q: the example's servers must agree", fields[1], fields[3:], opts)
			}
			continue
		}
		out = append(out, "    "+line)
	}
	if opts == nil {
		return "", errors.New("no server line")
	}
	return strings.Join(out, "\n") + "\n", nil
}

func isSection(word string) bool {
	switch word {
	case "global", "defaults", "frontend", "backend", "listen":
		return true
	}
	return false
}

// serverOptions is opts without the PROXY protocol ones unless proxy.
func serverOptions(opts []string, proxy bool) []string {
	if proxy {
		return opts
	}
	var out []string
	for _, o := range opts {
		if o != "send-proxy-v2" && o != "check-send-proxy" {
			out = append(out, o)
		}
	}
	return out
}

// exampleConfig reads configs/haproxy.cfg.
func exampleConfig(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "configs", "haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// startHAProxy writes the configuration and runs HAProxy in the foreground
// in the lb namespace, logging to haproxy.log.
func (f *fleet) startHAProxy() {
	t := f.t
	t.Helper()
	p := haproxyParams{statsSock: f.statsSock, bind: fmt.Sprintf("127.0.0.1:%d", fleetPort), proxy: f.opts.proxy, edits: f.opts.edits}
	for _, h := range f.hosts {
		p.servers = append(p.servers, fmt.Sprintf("%s:%d", h.addr, fleetPort))
	}
	cfg, err := haproxyConfig(exampleConfig(t), p)
	if err != nil {
		t.Fatalf("configs/haproxy.cfg: %v", err)
	}
	path := filepath.Join(f.dir, "haproxy.cfg")
	writeFile(t, path, cfg)
	logf, err := os.Create(filepath.Join(f.dir, "haproxy.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	cmd := inNamespace(f.lb, "haproxy", "-db", "-f", path)
	cmd.Stdout, cmd.Stderr = logf, logf
	if f.haproxy, err = startProc(cmd); err != nil {
		t.Fatalf("start haproxy: %v", err)
	}
	lancelottest.WaitFor(t, 10*time.Second, "HAProxy's stats socket", func() bool {
		_, err := f.stats()
		return err == nil
	})
}

// stats returns HAProxy's `show stat`, one row per svname (h1, ...,
// FRONTEND, BACKEND), each a map from column name to value.
func (f *fleet) stats() (map[string]map[string]string, error) {
	conn, err := net.DialTimeout("unix", f.statsSock, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(conn, "show stat\n"); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		return nil, err
	}
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(b), "# ")))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil || len(recs) < 2 {
		return nil, fmt.Errorf("show stat: %q, %v", b, err)
	}
	out := map[string]map[string]string{}
	for _, rec := range recs[1:] {
		row := map[string]string{}
		for i, col := range recs[0] {
			if i < len(rec) {
				row[col] = rec[i]
			}
		}
		out[row["svname"]] = row
	}
	return out, nil
}

// inRotation: HAProxy has the server fully UP, with a weight and its last
// health check passed.
func inRotation(row map[string]string) bool {
	return row["status"] == "UP" && row["weight"] != "0" && strings.HasSuffix(row["check_status"], "L7OK")
}

// outOfRotation: HAProxy sends the server no new connections (DOWN, or
// drained by its agent).
func outOfRotation(row map[string]string) bool {
	return !strings.HasPrefix(row["status"], "UP") || row["weight"] == "0"
}

func (f *fleet) waitInRotation(h *fleetHost, timeout time.Duration) {
	f.t.Helper()
	f.waitServer(h, timeout, "UP in HAProxy", inRotation)
}

func (f *fleet) waitOutOfRotation(h *fleetHost, timeout time.Duration) {
	f.t.Helper()
	f.waitServer(h, timeout, "out of HAProxy's rotation", outOfRotation)
}

// waitServer polls HAProxy until h's row satisfies cond.
func (f *fleet) waitServer(h *fleetHost, timeout time.Duration, what string, cond func(map[string]string) bool) {
	f.t.Helper()
	var row map[string]string
	deadline := time.Now().Add(timeout)
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		if st, err := f.stats(); err == nil {
			if row = st[h.name]; row != nil && cond(row) {
				return
			}
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s not %s after %v: status=%q weight=%q check=%q (%s) agent=%q (%s)", h.name, what, timeout,
				row["status"], row["weight"], row["check_status"], row["last_chk"], row["agent_status"], row["last_agt"])
		}
		time.Sleep(delay)
	}
}

// fleetHost is one lancelot host: a namespace and its supervisor(s).
type fleetHost struct {
	f       *fleet
	name    string // h1, ...: HAProxy's server name
	ns      string
	addr    string
	pidFile string
	logPath string
	procs   []*harnessProc // every supervisor the harness started
}

// serveArgs are the host's `lancelot serve` arguments.
func (h *fleetHost) serveArgs() []string {
	o := h.f.opts
	args := []string{"serve", "--listen", fmt.Sprintf("%s:%d", h.addr, fleetPort),
		"--workers", fmt.Sprint(fleetWorkers), "--pid-file", h.pidFile}
	if o.agent {
		args = append(args, "--agent-listen", fmt.Sprintf("%s:%d", h.addr, fleetAgentPort),
			"--drain-delay", o.drainDelay.String())
	}
	if o.proxy {
		args = append(args, "--proxy-protocol", "v2", "--proxy-allow-from", fleetLB+"/32")
	}
	if o.debugLog {
		args = append(args, "--log-level", "debug")
	}
	return args
}

// launch starts the host's supervisor, appending to its log.
func (h *fleetHost) launch() {
	t := h.f.t
	t.Helper()
	os.Remove(h.pidFile)
	logf, err := os.OpenFile(h.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the child has its own copy
	cmd := inNamespace(h.ns, h.f.bin, h.serveArgs()...)
	cmd.Stdout, cmd.Stderr = logf, logf
	p, err := startProc(cmd)
	if err != nil {
		t.Fatalf("start %s: %v", h.name, err)
	}
	h.procs = append(h.procs, p)
}

// current is the supervisor the harness started last.
func (h *fleetHost) current() *harnessProc { return h.procs[len(h.procs)-1] }

// waitReady waits until the pid file names the supervisor just started.
func (h *fleetHost) waitReady() {
	h.f.t.Helper()
	p := h.current()
	lancelottest.WaitFor(h.f.t, 10*time.Second, h.name+" ready (pid file written)", func() bool {
		select {
		case <-p.exited:
			h.f.t.Fatalf("%s exited before it was ready: %v", h.name, p.err)
		default:
		}
		return h.pid() == p.cmd.Process.Pid
	})
}

// pid is the supervisor pid in the pid file, or 0.
func (h *fleetHost) pid() int {
	b, err := os.ReadFile(h.pidFile)
	if err != nil {
		return 0
	}
	var pid int
	fmt.Sscan(string(b), &pid)
	return pid
}

// signal signals the supervisor named by the pid file.
func (h *fleetHost) signal(sig syscall.Signal) int {
	h.f.t.Helper()
	pid := h.pid()
	if pid <= 0 {
		h.f.t.Fatalf("%s: no pid file", h.name)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		h.f.t.Fatalf("%s: signal %v to %d: %v", h.name, sig, pid, err)
	}
	return pid
}

// waitGone waits until pid has exited.
func (h *fleetHost) waitGone(pid int, timeout time.Duration) {
	h.f.t.Helper()
	lancelottest.WaitFor(h.f.t, timeout, fmt.Sprintf("%s: supervisor %d exited", h.name, pid), func() bool {
		for _, p := range h.procs {
			if p.cmd.Process.Pid == pid {
				select {
				case <-p.exited:
					return true
				default:
					return false
				}
			}
		}
		return !proc.Alive(pid)
	})
}

// killAll SIGKILLs the supervisors the harness started. Their workers, and
// the supervisors that binary upgrades started, die with the namespace
// sweep of the teardown (killNamespacePIDs): a pid read earlier from a pid
// file may belong to another process by now, a pid in our namespace cannot.
func (h *fleetHost) killAll() {
	for _, p := range h.procs {
		p.kill()
	}
}

// startBench runs `lancelot bench` in the lb namespace against HAProxy's
// frontend for d.
func (f *fleet) startBench(d time.Duration) *harnessProc {
	f.t.Helper()
	cmd := inNamespace(f.lb, f.bin, "bench", "--server", fmt.Sprintf("127.0.0.1:%d", fleetPort), "--mode", "book",
		"-c", fmt.Sprint(fleetClients), "--duration", d.String(), "--json")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = new(bytes.Buffer), new(bytes.Buffer)
	p, err := startProc(cmd)
	if err != nil {
		f.t.Fatalf("start bench: %v", err)
	}
	f.benches = append(f.benches, p)
	return p
}

// benchResult waits for a bench and decodes its JSON.
func (f *fleet) benchResult(p *harnessProc, timeout time.Duration) loadgen.Result {
	f.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.kill()
		f.t.Fatalf("bench still running after %v", timeout)
	}
	stdout, stderr := p.cmd.Stdout.(*bytes.Buffer), p.cmd.Stderr.(*bytes.Buffer)
	var r loadgen.Result
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		f.t.Fatalf("bench: %v, output %q, stderr %q", p.err, stdout, stderr)
	}
	return r
}

// frontendSessions is the number of connections HAProxy's frontend took.
func (f *fleet) frontendSessions() int {
	st, err := f.stats()
	if err != nil {
		return 0
	}
	var n int
	fmt.Sscan(st["FRONTEND"]["stot"], &n)
	return n
}

// ask runs `lancelot ask` in the lb namespace through HAProxy.
func (f *fleet) ask(questions ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	args := append([]string{"netns", "exec", f.lb, f.bin, "ask", "--server", fmt.Sprintf("127.0.0.1:%d", fleetPort),
		"--timeout", "5s"}, questions...)
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	return string(out), err
}
