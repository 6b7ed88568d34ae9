package main

// The chaos soak: the real binary under a continuous, checked load while
// random operator signals (HUP, TTIN, TTOU, USR2) and, in one variant,
// SIGKILLs of random workers arrive. docs/bench/chaos.sh runs it for
// longer.

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/camelot/lancelot/cmd/internal/loadgen"
	"github.com/camelot/lancelot/cmd/internal/proc"
	"github.com/camelot/lancelot/shared/lancelottest"
)

// Chaos traffic: each client holds at most one connection at a time, so a
// killed worker can have at most this many open.
const (
	chaosBook = 4
	chaosLong = 4
)

// chaosDrain is the servers' --shutdown-timeout: long enough for a
// handover on a busy machine, short against the run, so that a connection
// left to drain (0.3.0 drains them all) is closed while the soak watches.
const chaosDrain = 5 * time.Second

// TestChaosSoak sends random HUP, TTIN, TTOU (kept within 1..4 workers)
// and USR2 to a --workers 2 server under load, and under persistent
// connections that never reconnect; the "kills" variant also SIGKILLs
// random ready workers. Without kills no client may fail and no persistent
// connection may close; with them only connections the killed workers had
// open, at most one per client per kill, and only persistent connections a
// killed worker held (or was being handed) when it was killed. At the
// end the server is quiet with the worker count the signals asked for, and
// after TERM every process it ever had is gone and every supervisor exited
// 0.
//
// LANCELOT_CHAOS_DURATION sets each variant's length (default 15 s without
// kills, 10 s with), LANCELOT_CHAOS_SEED replays a run's choices (the
// timing differs).
func TestChaosSoak(t *testing.T) {
	skipIfShort(t)
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("LANCELOT_CHAOS_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("LANCELOT_CHAOS_SEED=%q: %v", v, err)
		}
	}
	t.Logf("chaos seed %d (LANCELOT_CHAOS_SEED=%d replays it)", seed, seed)
	for _, v := range []struct {
		name  string
		kills bool
		def   time.Duration
	}{
		{"signals", false, 15 * time.Second},
		{"kills", true, 10 * time.Second},
	} {
		t.Run(v.name, func(t *testing.T) {
			runChaos(t, v.kills, envDuration(t, "LANCELOT_CHAOS_DURATION", v.def), seed)
		})
	}
}

// chaos is one soak's state, owned by the test goroutine.
type chaos struct {
	t     *testing.T
	s     *server // the first supervisor; later ones are followed through its pid file
	rng   *rand.Rand
	kills bool
	// want is the running count the signals asked for.
	want int
	sup  int // the current supervisor
	// sups are every supervisor in order; seen is every process of the
	// tree ever seen.
	sups []int
	seen map[int]bool
	sent map[string]int
	// conns are the persistent connections; exposed are those a kill may
	// have closed (their local ports).
	conns   *soakConns
	exposed map[int]bool
	// refused are the connections the servers logged as refused by a
	// handover's receiver or lost in a failed batch, for the summary.
	refused int
	// lost are the HUPs the supervisor never counted.
	lost []string
}

func runChaos(t *testing.T, kills bool, duration time.Duration, seed uint64) {
	// Successors of a binary upgrade are orphaned when their launcher
	// exits; as a subreaper the test adopts them and can read their exit
	// status.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatalf("PR_SET_CHILD_SUBREAPER: %v", err)
	}
	t.Cleanup(func() { unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })
	// A short drain deadline: a connection a retired worker failed to hand
	// over is closed at a question boundary within it, which the clients
	// count as a failure, so the soak sees every connection left behind.
	s := startServer(t, "--workers", "2", "--shutdown-timeout", chaosDrain.String())
	c := &chaos{t: t, s: s, rng: rand.New(rand.NewPCG(seed, uint64(len(t.Name())))), kills: kills, want: 2,
		sup: s.cmd.Process.Pid, sups: []int{s.cmd.Process.Pid}, seen: map[int]bool{s.cmd.Process.Pid: true}, sent: map[string]int{}}
	t.Cleanup(c.killAll)
	l := startLoad(t, s.addr, chaosBook, chaosLong)
	c.conns, c.exposed = startSoakConns(t, s.addr), map[int]bool{}
	l.waitExchanges(100)
	start := time.Now()
	for time.Since(start) < duration {
		c.sample()
		c.step()
		time.Sleep(time.Duration(20+c.rng.IntN(280)) * time.Millisecond) // pacing, not a wait
	}
	c.conns.waitAsked(t, 2*chaosConns) // the survivors still answer
	c.conns.halt()
	failures := l.failures()
	total := int64(0)
	for _, n := range failures {
		total += n
	}
	summary := fmt.Sprintf("chaos %s: %v, %d exchanges over %d connections, %d failures %v, actions %v, supervisors %d, processes seen %d",
		map[bool]string{false: "signals", true: "kills"}[kills], duration, l.stop().Exchanges, l.progress().Connections, total, failures, c.sent, len(c.sups), len(c.seen))
	if kills && c.sent["KILL"] > 0 {
		summary += fmt.Sprintf(", %.2f failures per kill", float64(total)/float64(c.sent["KILL"]))
	}
	if len(c.lost) > 0 {
		summary += fmt.Sprintf(", %d HUPs lost", len(c.lost))
	}
	t.Log(summary)
	if len(c.lost) > 0 {
		t.Errorf("%d of %d HUPs never reached the supervisor (not counted in its status within 5 s): %v", len(c.lost), c.sent["HUP"], c.lost)
	}
	c.refused = loggedLeftBehind(c.s.logs.String())
	c.checkFailures(failures, total, l.examples())
	c.checkConns()
	c.checkEnd()
}

// step sends one random action.
func (c *chaos) step() {
	actions := []string{"HUP", "HUP", "USR2"}
	if c.want < 4 {
		actions = append(actions, "TTIN", "TTIN")
	}
	if c.want > 1 {
		actions = append(actions, "TTOU", "TTOU")
	}
	if c.kills {
		actions = append(actions, "KILL", "KILL", "KILL")
	}
	switch a := actions[c.rng.IntN(len(actions))]; a {
	case "HUP":
		c.signal(syscall.SIGHUP, a)
	case "TTIN":
		c.signal(syscall.SIGTTIN, a)
		c.want++
	case "TTOU":
		c.signal(syscall.SIGTTOU, a)
		c.want--
	case "USR2":
		c.upgrade()
	case "KILL":
		c.killWorker()
	}
}

// signal sends sig to the current supervisor and waits until its status
// counts it: two signals of one kind sent before the first is delivered
// would be one.
func (c *chaos) signal(sig syscall.Signal, name string) {
	c.t.Helper()
	before, counted := c.handled(name)
	if err := syscall.Kill(c.sup, sig); err != nil {
		c.t.Fatalf("%s to supervisor %d: %v", name, c.sup, err)
	}
	c.sent[name]++
	if !counted {
		// An older build's status does not count signals: pace instead.
		time.Sleep(100 * time.Millisecond)
		return
	}
	if lancelottest.Poll(5*time.Second, func() bool { return c.acknowledged(sig, name, before) }) {
		return
	}
	// An uncounted HUP to a supervisor that still answers was lost (a stuck
	// loop shows at the next TTIN, TTOU or USR2, or the final wait for
	// quiet). It changes no count: note it, fail at the end, go on.
	if st, err := statusOf(c.s.pidFile); sig == syscall.SIGHUP && err == nil && st.PID == c.sup {
		c.lost = append(c.lost, fmt.Sprintf("HUP to %d at %s", c.sup, time.Now().Add(-5*time.Second).UTC().Format("15:04:05.000")))
		return
	}
	c.stuck(fmt.Sprintf("supervisor %d did not count the %s sent 5 s ago: the signal was lost, or the supervisor is stuck (its goroutines are in the log)", c.sup, name))
}

// handled returns how many signals named name the current supervisor has
// handled, from its status (by pid: the pid file may already name a
// successor); counted is false when its status does not count signals (an
// older build). A supervisor that does not answer is stuck.
func (c *chaos) handled(name string) (n uint64, counted bool) {
	c.t.Helper()
	st, err := statusOfPID(c.sup)
	switch {
	case err != nil && hasStatusCommand():
		c.stuck(fmt.Sprintf("supervisor %d does not answer status before a %s: %v", c.sup, name, err))
	case err != nil || st.Signals == nil:
		return 0, false
	}
	return st.Signals[name], true
}

// acknowledged reports whether the current supervisor has counted more
// signals named name than before, or, for USR2, already handed over to a
// successor (which then may have exited before its count could be read).
func (c *chaos) acknowledged(sig syscall.Signal, name string, before uint64) bool {
	if sig == syscall.SIGUSR2 {
		if pid := c.s.pidFromFile(); pid > 0 && pid != c.sup {
			return true
		}
	}
	st, err := statusOfPID(c.sup)
	return err == nil && st.Signals[name] > before
}

// stuck fails the soak when the supervisor does not react, after dumping
// its goroutines to the log (SIGABRT: Go's runtime prints every stack)
// and its state.
func (c *chaos) stuck(what string) {
	c.t.Helper()
	st, err := statusOf(c.s.pidFile)
	state, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.sup))
	syscall.Kill(c.sup, syscall.SIGABRT)
	lancelottest.Poll(2*time.Second, func() bool { return !proc.Alive(c.sup) })
	c.t.Fatalf("%s; its status %+v (err %v); /proc status:\n%s", what, st, err, state)
}

// upgrade sends USR2 and follows the pid file to the new supervisor; no
// other action is sent meanwhile, so none reaches a supervisor that has
// already handed over.
func (c *chaos) upgrade() {
	c.t.Helper()
	old := c.sup
	c.signal(syscall.SIGUSR2, "USR2")
	lancelottest.WaitFor(c.t, 20*time.Second, fmt.Sprintf("pid file naming the successor of %d", old), func() bool {
		pid := c.s.pidFromFile()
		return pid > 0 && pid != old
	})
	c.sup = c.s.pidFromFile()
	c.sups = append(c.sups, c.sup)
	c.seen[c.sup] = true
}

// killWorker SIGKILLs a random ready worker: one a rollout waits for would
// abort it, which leaves the slots short of the running count until the
// next rollout.
func (c *chaos) killWorker() {
	c.t.Helper()
	var ready, slots []int
	if st, err := statusOf(c.s.pidFile); err == nil {
		slots = slotPIDs(st)
		for _, sl := range st.Slots {
			if sl.Ready && proc.Alive(sl.PID) { // not one killed a moment ago
				ready = append(ready, sl.PID)
			}
		}
	} else if hasStatusCommand() {
		c.t.Fatal(err)
	} else {
		ready = workerChildren(c.sup) // an older build: any worker
	}
	if len(ready) == 0 {
		return
	}
	victim := ready[c.rng.IntN(len(ready))]
	since := c.conns.dialled()
	held := holders(c.t, c.s.port)
	syscall.Kill(victim, syscall.SIGKILL)
	c.sent["KILL"]++
	for _, port := range c.conns.exposed(held, victim, slots, since) {
		c.exposed[port] = true
	}
}

// sample records the current tree's processes.
func (c *chaos) sample() {
	for _, sup := range c.sups {
		for _, pid := range proc.Children(sup) {
			c.seen[pid] = true
		}
	}
}

func (c *chaos) checkFailures(failures map[loadgen.ErrorKind]int64, total int64, examples []string) {
	t := c.t
	if !c.kills {
		if total > 0 {
			t.Errorf("%d client failures without a kill: %v; examples %q", total, failures, examples)
		}
		return
	}
	for kind, n := range failures {
		// reset_queued: a connection the worker accepted but had not
		// answered yet when it was killed.
		if kind != loadgen.EOF && kind != loadgen.Reset && kind != loadgen.ResetQueued {
			t.Errorf("%d failures of kind %q (examples %q): only the killed workers' open connections may fail", n, kind, examples)
		}
	}
	if bound := int64(c.sent["KILL"] * (chaosBook + chaosLong)); total > bound {
		t.Errorf("%d failures after %d kills: more than the %d connections the killed workers could have had open", total, c.sent["KILL"], bound)
	}
}

// checkConns checks that the server closed no persistent connection but
// those a kill exposed.
func (c *chaos) checkConns() {
	ports, errs, dialled := c.conns.failures()
	var unexcused []string
	for _, port := range ports {
		if !c.exposed[port] {
			unexcused = append(unexcused, fmt.Sprintf("%d: %v", port, errs[port]))
		}
	}
	c.t.Logf("persistent connections: %d of %d closed, %d exposed to the %d kills; the servers logged %d connections refused or lost in a handover", len(ports), dialled, len(c.exposed), c.sent["KILL"], c.refused)
	if len(unexcused) > 0 {
		c.t.Errorf("%d persistent connections closed that no killed worker held (client port: error): %q", len(unexcused), unexcused)
	}
}

// loggedLeftBehind sums the connections the servers' handover lines say a
// receiver refused (the sender kept them) or a failed batch carried (the
// sender closed them).
func loggedLeftBehind(logs string) int {
	n := 0
	for _, m := range regexp.MustCompile(`(refused_kept_here|failed_closed)=(\d+)`).FindAllStringSubmatch(logs, -1) {
		k, _ := strconv.Atoi(m[2])
		n += k
	}
	return n
}

// checkEnd waits for quiet, checks the counts, stops the server and checks
// nothing of it is left.
func (c *chaos) checkEnd() {
	t := c.t
	if !hasStatusCommand() {
		// An older build (LANCELOT_TEST_BIN): count its workers, then stop.
		n := 0
		lancelottest.Poll(10*time.Second, func() bool { n = len(workerChildren(c.sup)); return n == c.want })
		t.Fatalf("%s has no status command: cannot wait for quiet; supervisor %d has %d worker processes, the signals asked for %d", binPath, c.sup, n, c.want)
	}
	st := waitQuiet(t, c.s.pidFile, 30*time.Second)
	c.sample()
	if st.PID != c.sup || st.Running != c.want || len(st.Slots) != c.want {
		t.Errorf("at the end: supervisor %d running %d slots %d; want supervisor %d and %d as the signals asked (%v)",
			st.PID, st.Running, len(st.Slots), c.sup, c.want, c.sent)
	}
	lancelottest.WaitFor(t, 10*time.Second, "every earlier supervisor gone", func() bool { return !anyAlive(c.sups[:len(c.sups)-1]) })
	if w := workerChildren(c.sup); len(w) != c.want {
		t.Errorf("supervisor %d has %d worker processes %v, want %d", c.sup, len(w), w, c.want)
	}
	if err := syscall.Kill(c.sup, syscall.SIGTERM); err != nil {
		t.Fatalf("TERM %d: %v", c.sup, err)
	}
	pids := slices.Sorted(maps.Keys(c.seen))
	lancelottest.WaitFor(t, 15*time.Second, "every process of the tree gone", func() bool { return !anyAlive(pids) })
	if err := c.s.wait(5 * time.Second); err != nil {
		t.Errorf("supervisor %d exited with %v, want 0", c.sups[0], err)
	}
	for _, pid := range c.sups[1:] {
		if status := reap(t, pid); status != 0 {
			t.Errorf("supervisor %d exited with %s, want 0", pid, exitString(status))
		}
	}
}

// reap waits for an adopted process (see PR_SET_CHILD_SUBREAPER) that has
// exited and returns its wait status.
func reap(t *testing.T, pid int) unix.WaitStatus {
	t.Helper()
	var ws unix.WaitStatus
	lancelottest.WaitFor(t, 5*time.Second, fmt.Sprintf("exit status of %d", pid), func() bool {
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if err != nil {
			t.Fatalf("wait4(%d): %v (not adopted?)", pid, err)
		}
		return got == pid
	})
	return ws
}

func exitString(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "signal " + ws.Signal().String()
	}
	return "exit status " + strconv.Itoa(ws.ExitStatus())
}

// killAll SIGKILLs, by pid, whatever the soak left (a failed run), and
// reaps the adopted supervisors.
func (c *chaos) killAll() {
	c.sample()
	for pid := range c.seen {
		killIfOurs(pid)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range c.sups[1:] {
		var ws unix.WaitStatus
		for time.Now().Before(deadline) {
			if got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); got == pid || err != nil { // ECHILD: reaped already
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
