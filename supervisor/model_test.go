package supervisor

// The model test runs the supervisor's loop — the same handle,
// handleRequest and settle steps Run takes — against fake workers, a fake
// clock and real listening sockets (cheap, and what adoption and lending
// check), with thousands of seeded random event sequences. After every
// step it checks the invariants of doc.go, and that every client
// connection is served: the fakes hold connections and hand them over
// along real handover channels, as workers do (model_handover_test.go).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camelot/lancelot/shared/config"
	"github.com/camelot/lancelot/shared/control"
	"github.com/camelot/lancelot/shared/handoff"
)

var (
	modelSeed     = flag.Uint64("model.seed", 0, "run only this seed of the model test")
	modelEpisodes = flag.Int("model.episodes", 2000, "random event sequences the model test runs")
)

// fakeWorker is a worker process as the model sees it, and the workerProc
// the supervisor drives.
type fakeWorker struct {
	m      *model
	w      *worker
	pidv   int
	ready  bool // it reported ready
	hung   bool // its loops stopped: it answers nothing until it recovers
	hungAt time.Time
	// missedAt: when the first heartbeat request reached it while hung;
	// missedSeq, the last one, which it answers if it recovers.
	missedAt  time.Time
	missedSeq uint64
	// recovering: it recovered after the supervisor found it out, and its
	// answer is on its way: until it arrives, it still counts as late.
	recovering bool
	termed     bool // it got TERM or QUIT: draining
	dead       bool // it ended; its exit event is delivered or queued
	killed     bool // the supervisor killed it, so it knows it is gone
	// abortedAt: when the supervisor asked it for its stacks (SIGABRT);
	// stuck: it cannot write them (stopped, or its stderr blocked), so
	// only the SIGKILL after the grace ends it.
	abortedAt time.Time
	stuck     bool
	reaped    bool // its exit event was delivered
	// serving are the sockets it accepts on, by its own account: those it
	// started with, plus lends, minus reclaims.
	serving map[int]bool
	// conns are the client connections it holds. termedAt: when it was
	// told to stop; it closes what it still holds --shutdown-timeout
	// later, or at once after QUIT (quit).
	conns    int
	termedAt time.Time
	quit     bool
}

func (f *fakeWorker) pid() int { return f.pidv }

func (f *fakeWorker) signal(sig syscall.Signal) {
	if f.dead { // the supervisor has not heard yet; it has written it off now
		f.killed = f.killed || sig == syscall.SIGKILL || sig == syscall.SIGABRT
		f.termed = f.termed || sig == syscall.SIGTERM || sig == syscall.SIGQUIT
		return
	}
	switch sig {
	case syscall.SIGTERM, syscall.SIGQUIT:
		if !f.termed {
			f.termedAt = f.m.now
		}
		f.termed = true
		f.quit = f.quit || sig == syscall.SIGQUIT
	case syscall.SIGKILL:
		if f.ready && !f.hung && !f.termed && f.m.s.stopping == 0 {
			f.m.fail("pid %d: a ready, responsive worker was killed", f.pidv)
		}
		f.killed = true
		f.m.checkClose(f, "killed")
		f.die()
	case syscall.SIGABRT:
		if !f.hung {
			f.m.fail("pid %d: a responsive worker was asked for a stack dump", f.pidv)
		}
		f.killed = true // as good as: the supervisor wrote it off
		f.abortedAt = f.m.now
		f.stuck = f.m.rng.IntN(2) == 0
		f.m.tracef("pid %d asked for its stacks (stuck: %v)", f.pidv, f.stuck)
		if !f.stuck {
			f.die() // the runtime wrote them and exited
		}
	}
}

// die ends the process, and the connections it still holds; the kernel
// reports it a little later.
func (f *fakeWorker) die() {
	if f.conns > 0 {
		f.m.tracef("pid %d: %d connections end with it", f.pidv, f.conns)
		f.m.lost += f.conns
		f.conns = 0
	}
	f.dead = true
	f.m.startTrouble = true
	f.m.pending = append(f.m.pending, event{kind: eventExited, worker: f.w, err: errors.New("killed")})
}

func (f *fakeWorker) send(msg control.Message) error {
	if f.dead {
		return syscall.EPIPE
	}
	switch msg.Type {
	case control.TypeLend:
		if msg.File == nil {
			f.m.fail("lend of socket %d without a descriptor", msg.Socket)
		}
		f.serving[msg.Socket] = true
	case control.TypeReclaim, control.TypeRetire:
		delete(f.serving, msg.Socket)
	case control.TypeHandOver:
		f.m.handoverEnd(f, msg)
	case control.TypeAliveRequest:
		if !f.hung {
			f.m.answers = append(f.m.answers, event{kind: eventAlive, worker: f.w, seq: msg.Seq})
			break
		}
		if f.missedAt.IsZero() {
			f.missedAt = f.m.now
		}
		f.missedSeq = msg.Seq
	}
	if msg.Type == control.TypeLend && !f.m.s.ready && !f.m.startTrouble && !f.m.homeOf(f.w, msg.Socket) &&
		!f.m.s.socket(msg.Socket).retiring { // a removed address's queue is taken at once
		f.m.fail("socket %d lent to pid %d during a start in which no worker failed", msg.Socket, f.pidv)
	}
	return nil
}

// homeOf reports whether w's slot is home to socket k: a lend to it only
// delivers a socket that moved there.
func (m *model) homeOf(w *worker, k int) bool {
	return w.slot < len(m.s.slots) && slices.Contains(m.s.slots[w.slot].home, k)
}

// recover makes a hung worker's loops go round again (SIGCONT): it answers
// the last request it got meanwhile.
func (f *fakeWorker) recover() {
	// An answer still on its way from an earlier recovery keeps it late.
	f.recovering = f.recovering || f.foundOut() && !f.missedAt.IsZero()
	f.hung = false
	if !f.missedAt.IsZero() {
		f.m.answers = append(f.m.answers, event{kind: eventAlive, worker: f.w, seq: f.missedSeq})
	}
	f.hungAt, f.missedAt, f.missedSeq = time.Time{}, time.Time{}, 0
}

// foundOut reports whether the supervisor must know by now that f is
// hung: a heartbeat request reached it an interval ago (the supervisor
// then finds it late), or it has been hung for two intervals plus what the
// model's clock may overshoot a deadline by, twice.
func (f *fakeWorker) foundOut() bool {
	s := f.m.s
	if !f.hung || !f.ready || s.cfg.WorkerTimeout <= 0 {
		return false
	}
	interval := min(s.cfg.WorkerTimeout/4, heartbeatEvery)
	return !f.missedAt.IsZero() && f.m.now.Sub(f.missedAt) >= interval ||
		f.m.now.Sub(f.hungAt) > 2*interval+2*maxClockStep
}

// mayFinish reports whether f, told to stop, may exit now: it holds
// nothing, or got QUIT, or its own shutdown timeout is over and it closes
// what it holds.
func (f *fakeWorker) mayFinish() bool {
	return f.conns == 0 || f.quit || !f.m.now.Before(f.termedAt.Add(f.m.s.cfg.ShutdownTimeout))
}

// finishDrain ends f, told to stop, as mayFinish allows.
func (f *fakeWorker) finishDrain() {
	f.m.tracef("pid %d finishes draining", f.pidv)
	why := "at its shutdown timeout"
	if f.quit {
		why = "on QUIT"
	}
	f.m.checkClose(f, why)
	f.die()
}

func (f *fakeWorker) fetchStats(context.Context) control.Stats { return control.Stats{} }
func (f *fakeWorker) lastStats() control.Stats                 { return control.Stats{} }

// fakeSuccessor is a binary upgrade's new supervisor. protocol is the
// handoff protocol it speaks (1: one that says ready without a hello; 4: one
// this release does not know); hello, ready and accepted track how far the
// handshake went.
type fakeSuccessor struct {
	pidv                   int
	protocol               int
	hello, ready, accepted bool
	served                 bool // it said serving
	refused                bool
	u                      handoff.Upgrade  // with its own copies of the sockets
	passed                 []syscall.Signal // requests passed on on the channel (protocol 3)
	signals                []syscall.Signal // requests passed on as signals (protocol 2)
}

func (f *fakeSuccessor) pid() int                  { return f.pidv }
func (f *fakeSuccessor) accept() error             { f.accepted = true; return nil }
func (f *fakeSuccessor) refuse(string, bool)       { f.refused = true }
func (f *fakeSuccessor) done()                     {}
func (f *fakeSuccessor) signal(sig syscall.Signal) { f.signals = append(f.signals, sig) }
func (f *fakeSuccessor) passOn(sigs []syscall.Signal) error {
	f.passed = append(f.passed, sigs...)
	return nil
}

// fakeLink is a successor's link to a fake predecessor.
type fakeLink struct {
	asked  bool // ready was called: a verdict is due
	served bool
	// pass are the requests the predecessor passes on once served;
	// passed once it did.
	pass   []syscall.Signal
	passed bool
}

func (l *fakeLink) ready()                   { l.asked = true }
func (l *fakeLink) serving([]*os.File) error { l.served = true; return nil }

// model is one episode: a supervisor, its fakes, and what the signals
// asked for.
type model struct {
	t   *testing.T
	rng *rand.Rand
	s   *Supervisor
	now time.Time

	fakes     []*fakeWorker
	nextPID   int
	pending   []event // exits the kernel has not reported yet
	answers   []event // heartbeat answers on their way
	failSpawn bool    // the next worker start fails
	// startTrouble: a worker failed, hung, or could not start before the
	// supervisor was ready: only then may a socket be lent so early.
	startTrouble bool
	successor    *fakeSuccessor
	link         *fakeLink       // the successor's link to its predecessor, if it is one
	reloads      []reloadOutcome // what the next HUPs read
	replies      []chan error
	lastOK       bool // the last rollout request ended well
	expected     int  // the running count the signals asked for
	cfgWorkers   int  // the configured count the model's config file says
	stopSent     bool
	// wasReady: whether each slot's last worker had been ready when it
	// died, by the model's account (false after a failed start).
	wasReady map[*slot]bool
	failed   bool
	trace    *traceLog
	// unchecked: a scripted test knows the invariants do not hold for a
	// while (no descriptor to lend a socket with).
	unchecked bool
	// chans are the handover channels of this generation; ends, the ends
	// the supervisor has not closed yet (see model_handover_test.go).
	chans []*modelChannel
	ends  map[*os.File]*modelChannel
	// Client connections: opened, lost (with a worker that ended), and
	// handed to a binary upgrade's successor.
	opened, lost, handedOn int
}

// traceLog collects what happened in an episode: the model's steps and the
// supervisor's log records, kept unformatted (formatting thousands of
// episodes' logs would dominate the test) and printed when it fails.
type traceLog struct {
	entries []traceEntry
}

type traceEntry struct {
	line   string      // a model step
	record slog.Record // or a log record
}

func (l *traceLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *traceLog) Handle(_ context.Context, r slog.Record) error {
	l.entries = append(l.entries, traceEntry{record: r.Clone()})
	return nil
}
func (l *traceLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *traceLog) WithGroup(string) slog.Handler      { return l }

func (l *traceLog) String() string {
	var b strings.Builder
	text := slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}})
	for _, e := range l.entries {
		if e.line != "" {
			b.WriteString(e.line)
			continue
		}
		text.Handle(context.Background(), e.record)
	}
	return b.String()
}

func (m *model) tracef(format string, args ...any) {
	line := fmt.Sprintf("model +%v: "+format+"\n", append([]any{m.now.Sub(time.Unix(1_000_000, 0))}, args...)...)
	m.trace.entries = append(m.trace.entries, traceEntry{line: line})
}

type reloadOutcome struct {
	workers int
	listen  []string // nil: unchanged
	err     error
}

// modelAddrs are the addresses the model's configurations pick from.
var modelAddrs = []string{"127.0.0.1:0", "127.0.0.2:0", "127.0.0.3:0"}

// pickAddrs returns 1 to 3 of modelAddrs.
func (m *model) pickAddrs() []string {
	var out []string
	for _, a := range modelAddrs {
		if m.rng.IntN(2) == 0 {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		out = modelAddrs[:1]
	}
	return out
}

func (m *model) fail(format string, args ...any) {
	if !m.failed {
		m.failed = true
		m.t.Errorf(format, args...)
	}
}

func newModel(t *testing.T, seed uint64) *model {
	m := &model{t: t, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), now: time.Unix(1_000_000, 0), nextPID: 100, lastOK: true,
		trace: &traceLog{}, wasReady: map[*slot]bool{}}
	cfg := config.Default()
	cfg.Listen = m.pickAddrs()
	cfg.Workers = 1 + m.rng.IntN(3)
	cfg.WorkerTimeout = []time.Duration{0, time.Second, 10 * time.Second}[m.rng.IntN(3)]
	cfg.DrainDelay = []time.Duration{0, 0, time.Second}[m.rng.IntN(3)]
	if m.rng.IntN(8) == 0 {
		cfg.Handover = "off"
	}
	m.cfgWorkers = cfg.Workers
	m.expected = cfg.Workers
	m.s = m.newSupervisor(cfg, nil)
	return m
}

// newSupervisor builds a supervisor on the model's env, as New does on the
// real one.
func (m *model) newSupervisor(cfg config.Config, u *handoff.Upgrade) *Supervisor {
	s := newSupervisor(Options{Config: cfg, Upgrade: u, Reload: m.reload, Logger: slog.New(m.trace)})
	if u != nil {
		m.link = &fakeLink{}
		s.link = m.link
	}
	s.env = env{
		now:          func() time.Time { return m.now },
		checkFree:    func(string, map[uint64]bool) error { return nil },
		inspect:      func(string) binaryInfo { return binaryInfo{kind: binaryLancelot, what: "lancelot"} },
		bind:         bindSocket,
		handoverPair: m.handoverPair,
		startWorker: func(w *worker, spec workerSpec) (workerProc, error) {
			if m.failSpawn {
				m.failSpawn = false
				m.startTrouble = true
				if spec.slot < len(m.s.slots) {
					m.wasReady[m.s.slots[spec.slot]] = false
				}
				return nil, errors.New("injected: cannot start a worker")
			}
			m.nextPID++
			f := &fakeWorker{m: m, w: w, pidv: m.nextPID, serving: map[int]bool{}}
			for _, sock := range spec.sockets {
				f.serving[sock.id] = true
			}
			m.fakes = append(m.fakes, f)
			return f, nil
		},
		startSuccessor: func(u handoff.Upgrade) (successorProc, error) {
			m.nextPID++
			f := &fakeSuccessor{pidv: m.nextPID, u: u, protocol: []int{1, 2, 3, 3, 4}[m.rng.IntN(5)]}
			f.u.Sockets = nil
			for _, file := range u.Sockets {
				dup, err := dupFile(file)
				if err != nil {
					return nil, err
				}
				f.u.Sockets = append(f.u.Sockets, dup)
			}
			m.dropSuccessor()
			m.successor = f
			return f, nil
		},
	}
	if err := s.openSockets(); err != nil {
		m.t.Fatalf("open sockets: %v", err)
	}
	return s
}

// dropSuccessor closes the sockets of a successor that will never run.
func (m *model) dropSuccessor() {
	if m.successor != nil {
		for _, f := range m.successor.u.Sockets {
			f.Close()
		}
		m.successor = nil
	}
}

func dupFile(f *os.File) (*os.File, error) {
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		return nil, err
	}
	syscall.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), f.Name()), nil
}

func (m *model) reload() (config.Config, error) {
	cfg := m.s.cfg
	if len(m.reloads) == 0 {
		m.fail("reload read a configuration the model did not prepare")
		return cfg, nil
	}
	r := m.reloads[0]
	m.reloads = m.reloads[1:]
	if r.err != nil {
		return cfg, r.err
	}
	cfg.Workers = r.workers
	if r.listen != nil {
		cfg.Listen = r.listen
	}
	return cfg, nil
}

// request sends a signal as Reload does, with a reply to watch, and folds
// what it asks for into the expected running count.
func (m *model) request(sig syscall.Signal) {
	switch sig {
	case syscall.SIGHUP:
		r := reloadOutcome{workers: m.cfgWorkers}
		switch m.rng.IntN(5) {
		case 0:
			r.err = errors.New("injected: bad config")
		case 1:
			r.workers = 1 + m.rng.IntN(4)
		case 2:
			r.listen = m.pickAddrs()
		}
		m.reloads = append(m.reloads, r)
		if r.err == nil && r.workers != m.cfgWorkers {
			m.cfgWorkers, m.expected = r.workers, r.workers
		}
	case syscall.SIGTTIN:
		m.expected = min(m.expected+1, config.MaxWorkers)
	case syscall.SIGTTOU:
		m.expected = max(m.expected-1, 1)
	}
	m.tracef("%s (expect %d workers)", signalName(sig), m.expected)
	reply := make(chan error, 1)
	m.replies = append(m.replies, reply)
	m.s.handleRequest(request{kind: requestReload, sig: sig, reply: reply})
}

// step makes one random thing happen, then lets the supervisor settle.
func (m *model) step() {
	s := m.s
	switch p := m.rng.IntN(112); {
	case p < 8:
		m.request(syscall.SIGHUP)
	case p < 16:
		m.request(syscall.SIGTTIN)
	case p < 24:
		m.request(syscall.SIGTTOU)
	case p < 27:
		m.tracef("USR2")
		s.handleRequest(request{kind: requestSignal, sig: syscall.SIGUSR2})
	case p < 45:
		if f := m.pick(func(f *fakeWorker) bool { return !f.dead && !f.ready && !f.hung && !f.termed }); f != nil {
			f.ready = true
			m.tracef("pid %d ready", f.pidv)
			s.handle(event{kind: eventReady, worker: f.w})
		}
	case p < 52:
		if f := m.pick(func(f *fakeWorker) bool { return !f.dead }); f != nil {
			m.tracef("pid %d crashes", f.pidv)
			f.die() // a crash, before or after ready, or while draining
		}
	case p < 55:
		if f := m.pick(func(f *fakeWorker) bool { return !f.dead && !f.hung }); f != nil {
			m.tracef("pid %d hangs", f.pidv)
			f.hung, f.hungAt = true, m.now
			m.startTrouble = true
		}
	case p < 58:
		if f := m.pick(func(f *fakeWorker) bool { return !f.dead && f.hung && !f.killed }); f != nil {
			m.tracef("pid %d recovers", f.pidv)
			f.recover()
		}
	case p < 63:
		m.progress() // a worker hands over what it can before it gives up
		if f := m.pick(func(f *fakeWorker) bool { return !f.dead && f.termed && !f.hung && f.mayFinish() }); f != nil {
			f.finishDrain()
		}
	case p < 75:
		m.deliverPending()
	case p < 88:
		m.advance()
	case p < 90:
		m.tracef("next worker start will fail")
		m.failSpawn = true
	case p < 95:
		m.settleSuccessor()
	case p < 96:
		m.predecessorAnswers()
	case p < 100:
		m.deliverAnswers()
	case p < 108:
		m.connect()
	default:
		m.progress()
	}
	s.settle()
	m.collectReplies()
}

// pick returns a random fake of the current supervisor satisfying ok.
func (m *model) pick(ok func(*fakeWorker) bool) *fakeWorker {
	var c []*fakeWorker
	for _, f := range m.fakes {
		if ok(f) {
			c = append(c, f)
		}
	}
	if len(c) == 0 {
		return nil
	}
	return c[m.rng.IntN(len(c))]
}

// deliverPending reports the ended processes, in a random order.
func (m *model) deliverPending() {
	evs := m.pending
	m.pending = nil
	m.rng.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
	for _, ev := range evs {
		m.reap(ev)
	}
}

func (m *model) reap(ev event) {
	for _, f := range m.fakes {
		if f.w == ev.worker {
			f.reaped = true
			m.tracef("pid %d reaped", f.pidv)
			for _, sl := range m.s.slots {
				if sl.cur == f.w {
					m.wasReady[sl] = f.ready
				}
			}
			m.reapReceiver(f, ev)
			return
		}
	}
	m.s.handle(ev)
}

// deliverAnswers delivers the heartbeat answers of responsive workers: a
// busy worker answers late, but within --worker-timeout.
func (m *model) deliverAnswers() {
	evs := m.answers
	m.answers = nil
	for _, ev := range evs {
		for _, f := range m.fakes {
			if f.w == ev.worker {
				f.recovering = false
			}
		}
		m.s.handle(ev)
	}
}

// maxClockStep is the most the model's clock moves by at random, past the
// supervisor's next deadline possibly.
const maxClockStep = 200 * time.Millisecond

// advance moves the clock to the supervisor's next deadline, or a little,
// after every responsive worker's answers are in and the handovers have
// moved what they can: both take milliseconds, the deadlines seconds.
func (m *model) advance() {
	m.deliverAnswers()
	m.progress()
	if m.rng.IntN(3) == 0 {
		m.now = m.now.Add(time.Duration(m.rng.IntN(int(maxClockStep/time.Millisecond))) * time.Millisecond)
		return
	}
	if next := m.s.nextDeadline(); next.After(m.now) {
		m.now = next
	}
	m.tracef("clock")
}

// settleSuccessor moves an upgrade in flight one step on: the successor
// fails, or says its next line (hello, ready, serving), as its protocol
// has it.
func (m *model) settleSuccessor() {
	f := m.successor
	if f == nil || m.s.upgrade == nil || m.s.upgrade.proc != f || f.refused {
		return
	}
	if m.rng.IntN(4) == 0 {
		m.tracef("successor fails")
		m.s.handle(event{kind: eventSuccessorFailed, successor: f, err: errors.New("injected")})
		return
	}
	rep := handoff.Report{Kind: handoff.ReportReady, Protocol: f.protocol}
	switch {
	case f.protocol > 1 && !f.hello:
		f.hello = true
		rep = handoff.Report{Kind: handoff.ReportHello, Protocol: f.protocol, Release: "fake"}
	case f.served && handoff.Can(f.protocol).Conns:
		rep = handoff.Report{Kind: handoff.ReportConns, Files: m.successorEnds(f)}
	case f.accepted:
		f.served = true
		rep = handoff.Report{Kind: handoff.ReportServing}
	case f.ready:
		return // waiting for our verdict: it came at once, or never does
	default:
		f.ready = true
	}
	m.tracef("successor (protocol %d) reports %v (%d ends)", f.protocol, rep.Kind, len(rep.Files))
	from := m.s.survivors()
	m.s.handle(event{kind: eventSuccessorReport, successor: f, report: rep})
	if rep.Kind == handoff.ReportConns {
		m.checkUpgradeEnds(from, len(rep.Files))
	}
}

// predecessorAnswers answers a successor's ready as its predecessor
// would: mostly accept, sometimes refuse, sometimes die first; once the
// successor serves, it passes its waiting requests on.
func (m *model) predecessorAnswers() {
	l := m.link
	if l != nil && l.served && !l.passed {
		l.passed = true
		m.tracef("predecessor passes on %v", l.pass)
		m.s.handle(event{kind: eventPassedOn, sigs: l.pass})
		return
	}
	if l == nil || !l.asked || !m.s.awaitingVerdict {
		return
	}
	l.asked = false
	var err error
	switch m.rng.IntN(6) {
	case 0:
		err = &handoff.RefusedError{Reason: "injected"}
	case 1:
		err = handoff.ErrPredecessorGone
	}
	m.tracef("predecessor's verdict: %v", err)
	m.s.handle(event{kind: eventVerdict, err: err})
}

// collectReplies notes how the finished rollout requests ended.
func (m *model) collectReplies() {
	keep := m.replies[:0]
	for _, r := range m.replies {
		select {
		case err := <-r:
			m.lastOK = err == nil
		default:
			keep = append(keep, r)
		}
	}
	m.replies = keep
}

// check asserts the invariants after a step.
func (m *model) check() {
	s := m.s
	live := 0
	for _, f := range m.fakes {
		_, known := s.workers[f.w]
		if known == f.reaped {
			m.fail("pid %d: reaped=%v but known to the supervisor=%v", f.pidv, f.reaped, known)
		}
		if !f.reaped {
			live++
		}
		if f.hung && !f.dead && !f.termed && s.stopping == 0 && s.cfg.WorkerTimeout > 0 && f.ready &&
			m.now.Sub(f.hungAt) > s.cfg.WorkerTimeout+heartbeatEvery+stackDumpGrace+time.Second {
			m.fail("pid %d hung for %v and is still alive (worker-timeout %v)", f.pidv, m.now.Sub(f.hungAt), s.cfg.WorkerTimeout)
		}
		if !f.abortedAt.IsZero() && !f.dead && m.now.Sub(f.abortedAt) > stackDumpGrace {
			m.fail("pid %d still alive %v after it was asked for its stacks (grace %v)", f.pidv, m.now.Sub(f.abortedAt), stackDumpGrace)
		}
	}
	if live != len(s.workers) {
		m.fail("%d fake workers alive, supervisor knows %d", live, len(s.workers))
	}
	inFlight := 0
	for _, sl := range s.slots {
		if sl.next != nil && s.stopping == 0 {
			inFlight++
			if s.rollout == nil || s.rollout.inFlight != sl.next {
				m.fail("slot %d has a new worker that no rollout waits for", sl.index)
			}
		}
	}
	if inFlight > 1 {
		m.fail("%d rollout steps in flight", inFlight)
	}
	if s.stopping == 0 {
		m.checkServed()
		m.checkLoansEnd()
		m.checkNoIdleBackoff()
	}
	m.checkConns()
	m.checkEnds()
	if f := m.successor; f != nil {
		if f.protocol == 4 && f.hello && !f.refused {
			m.fail("a successor announced handoff protocol 4 and was not refused")
		}
		if f.accepted && !f.ready {
			m.fail("a successor was accepted before it said ready")
		}
	}
	m.checkAddrs()
	if l := m.link; l != nil && l.served && !s.ready {
		m.fail("the successor told its predecessor it serves before it took over")
	}
	// A successor carries out its predecessor's waiting requests once they
	// were passed on, after it took over.
	passing := m.link != nil && !m.link.passed
	if !m.stopSent && s.stopping == 0 && s.upgrade == nil && !passing && s.rollout == nil && len(s.requests) == 0 {
		if s.running != m.expected {
			m.fail("running count %d, the signals asked for %d", s.running, m.expected)
		}
		if s.convergeAt.IsZero() && len(s.slots) != s.running {
			m.fail("%d slots, running count %d, and no retry scheduled", len(s.slots), s.running)
		}
	}
}

// checkAddrs: once no rollout is queued, the sockets are on exactly the
// configured addresses, every slot is home to a socket of each, and no
// worker accepts on a socket that was closed.
func (m *model) checkAddrs() {
	s := m.s
	if s.stopping != 0 {
		return
	}
	if s.rollout == nil && len(s.requests) == 0 {
		if add, remove := s.diffAddrs(s.cfg.Listen); len(add)+len(remove) > 0 {
			m.fail("configured %v, listening on %v: %v missing, %v extra", s.cfg.Listen, s.listenAddrs(), add, remove)
		}
	}
	addrs := s.listenAddrs()
	for _, sl := range s.slots {
		var got []string
		for _, k := range sl.home {
			if sock := s.socket(k); sock != nil && !slices.Contains(got, sock.addr) {
				got = append(got, sock.addr)
			}
		}
		if len(got) != len(addrs) {
			m.fail("slot %d is home to sockets %v on %v, want one on each of %v", sl.index, sl.home, got, addrs)
		}
	}
	for _, f := range m.fakes {
		for k := range f.serving {
			if !f.dead && !f.termed && !f.killed && s.socket(k) == nil {
				m.fail("pid %d accepts on socket %d, which is closed", f.pidv, k)
			}
		}
	}
}

// checkServed: while any worker can accept, every socket is accepted on by
// one that can, as far as the supervisor can know: a hung worker counts
// until it is found out (its first missed heartbeat answer, see foundOut),
// a crashed one until the kernel reports its death. Before the service is
// first ready, a socket may wait for its worker's first start.
func (m *model) checkServed() {
	var able []*fakeWorker
	for _, f := range m.fakes {
		if f.ready && !f.termed && !f.killed && !f.reaped && !f.foundOut() && !f.recovering {
			able = append(able, f)
		}
	}
	if len(able) == 0 {
		return
	}
	for _, sock := range m.s.sockets {
		if m.waitsForFirstStart(sock.id) {
			continue
		}
		if !slices.ContainsFunc(able, func(f *fakeWorker) bool { return f.serving[sock.id] }) {
			m.fail("socket %d is served by no worker, though %d can accept (pid %d first)", sock.id, len(able), able[0].pidv)
			return
		}
	}
}

// waitsForFirstStart reports whether socket k may go unserved: the
// supervisor was never ready, and a home worker of k is starting in a slot
// that has seen no failure.
func (m *model) waitsForFirstStart(k int) bool {
	s := m.s
	if s.ready {
		return false
	}
	for _, sl := range s.slots {
		w := sl.cur
		if w == nil {
			w = sl.next
		}
		if !slices.Contains(sl.home, k) || w == nil || sl.crashes > 0 {
			continue
		}
		for _, f := range m.fakes {
			if f.w == w && !f.ready && !f.reaped && !f.killed && !f.termed {
				return true
			}
		}
	}
	return false
}

// checkLoansEnd: a socket whose home worker accepts (ready, answering its
// heartbeats) is served by no other accepting worker: a loan ends as soon
// as the reason for it does.
func (m *model) checkLoansEnd() {
	s := m.s
	for _, sl := range s.slots {
		if !sl.cur.accepting() {
			continue
		}
		for _, k := range sl.home {
			for _, other := range s.slots {
				if other != sl && other.cur.accepting() && other.cur.serving[k] && !slices.Contains(other.home, k) {
					m.fail("socket %d is still lent to slot %d, though its home slot %d accepts again", k, other.index, sl.index)
					return
				}
			}
		}
	}
}

// checkNoIdleBackoff: while no worker is healthy, nobody can be lent a
// socket, so no slot whose last worker had been ready waits out a backoff:
// it is restarting already. (A slot whose workers die before they are
// ready, or fail to start, keeps its backoff.)
func (m *model) checkNoIdleBackoff() {
	s := m.s
	for _, sl := range s.slots {
		if sl.cur.healthy() {
			return
		}
	}
	for _, sl := range s.slots {
		if sl.restartAt.After(m.now) && m.wasReady[sl] {
			m.fail("no worker is healthy, yet slot %d, whose last worker had been ready, waits %v to restart",
				sl.index, sl.restartAt.Sub(m.now))
			return
		}
	}
}

// stopPhase stops the supervisor and runs it until it finishes, which it
// must within a bound: draining workers are killed at their deadline.
func (m *model) stopPhase() {
	s := m.s
	if s.stopping == 0 {
		m.stopSent = true
		sig := syscall.SIGTERM
		if m.rng.IntN(4) == 0 {
			sig = syscall.SIGQUIT
		}
		s.handleRequest(request{kind: requestSignal, sig: sig})
		s.settle()
	}
	for i := 0; !s.finished(); i++ {
		if i > 1000 {
			m.fail("stop did not finish: %d workers left", len(s.workers))
			return
		}
		switch m.rng.IntN(5) {
		case 0:
			switch f := m.pick(func(f *fakeWorker) bool { return !f.dead && !f.hung }); {
			case f == nil:
			case !f.termed:
				m.tracef("pid %d crashes", f.pidv)
				f.die()
			case f.mayFinish():
				f.finishDrain()
			}
		case 1:
			m.deliverPending()
		case 2:
			m.progress()
		default:
			m.advance()
			m.deliverPending()
		}
		s.settle()
		m.check()
	}
	s.closeSockets()
	s.finish()
}

// takeOver continues the episode with the successor once the old
// supervisor has handed over and stopped, as a binary upgrade does.
func (m *model) takeOver() {
	f := m.successor
	u := f.u
	u.Protocol = f.protocol
	m.successor = nil
	old := m.s
	m.stopPhase()
	m.takeOverConns()
	m.fakes, m.pending, m.answers, m.replies, m.failSpawn, m.startTrouble = nil, nil, nil, nil, false, false
	cfg := old.cfg
	cfg.Workers = m.cfgWorkers
	m.s = m.newSupervisor(cfg, &u)
	m.link.pass = f.passed
	if err := m.s.start(); err != nil {
		m.t.Fatalf("successor start: %v", err)
	}
	if m.s.running != old.running {
		m.fail("successor runs %d workers, its predecessor ran %d", m.s.running, old.running)
	}
	m.stopSent = false
	m.lastOK = true
	for _, sig := range f.signals {
		reply := make(chan error, 1)
		m.replies = append(m.replies, reply)
		m.tracef("%s passed on to the successor", signalName(sig))
		m.s.handleRequest(request{kind: requestReload, sig: sig, reply: reply})
		m.s.settle()
	}
}

func openFDs(t *testing.T) int {
	fds, err := filepath.Glob("/proc/self/fd/*")
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}

// TestModel runs random event sequences against the supervisor's loop and
// checks its invariants after every step. A failure names its seed; rerun
// it alone with -model.seed=N.
func TestModel(t *testing.T) {
	episodes, first := *modelEpisodes, uint64(1)
	if *modelSeed != 0 {
		episodes, first = 1, *modelSeed
	}
	if testing.Short() {
		episodes = min(episodes, 200)
	}
	runEpisode(t, first, 1) // the runtime opens its poller on first use
	fdsBefore := openFDs(t)
	for seed := first; seed < first+uint64(episodes); seed++ {
		if !runEpisode(t, seed, 150) {
			t.Fatalf("model failed with seed %d: rerun with go test ./supervisor -run TestModel -model.seed=%d -v", seed, seed)
		}
	}
	if after := openFDs(t); after != fdsBefore {
		t.Errorf("%d descriptors open after the episodes, %d before: a socket or file leaked", after, fdsBefore)
	}
}

// runEpisode runs one seeded episode and reports whether it held.
func runEpisode(t *testing.T, seed uint64, steps int) bool {
	m := newModel(t, seed)
	if err := m.s.start(); err != nil {
		t.Fatalf("seed %d: start: %v", seed, err)
	}
	m.check()
	for i := 0; i < steps && !m.failed; i++ {
		m.step()
		m.check()
		if m.s.handedOver && m.successor != nil && !m.failed {
			m.takeOver()
		}
		if m.s.stopping != 0 {
			break
		}
	}
	if !m.failed {
		m.stopPhase()
	}
	m.dropSuccessor()
	m.checkEnds()
	if m.failed {
		t.Logf("seed %d failed at time +%v; trace:\n%s", seed, m.now.Sub(time.Unix(1_000_000, 0)), m.trace)
	}
	return !m.failed
}
