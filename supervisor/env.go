package supervisor

import (
	"context"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/camelot/lancelot/shared/config"
	"github.com/camelot/lancelot/shared/control"
	"github.com/camelot/lancelot/shared/handoff"
	"github.com/camelot/lancelot/shared/handover"
)

// env is the loop's only way to the operating system: the clock, sockets
// and processes. New fills it with the real thing (stdEnv); the model test
// fills it with a fake clock, fake sockets and fake workers, and drives the
// loop's steps itself, as cloudflare/tableflip's env does.
type env struct {
	now func() time.Time
	// checkFree refuses an address another process listens on; own are
	// the inodes of the supervisor's sockets.
	checkFree func(addr string, own map[uint64]bool) error
	// bind opens the sockets of one slot on addr: one, or two for a
	// wildcard where IPv6 sockets are IPv6-only (see bindSocket).
	bind func(addr string) ([]*socket, error)
	// startWorker starts w's process; the process reports its events
	// about w through envOptions.report.
	startWorker func(w *worker, spec workerSpec) (workerProc, error)
	// inspect says what the file a binary upgrade would start is.
	inspect func(path string) binaryInfo
	// startSuccessor starts a binary upgrade's new supervisor; it reports
	// eventSuccessorReport and eventSuccessorFailed about the returned
	// proc.
	startSuccessor func(u handoff.Upgrade) (successorProc, error)
	// handoverPair creates a handover channel: one end for the sending
	// worker, one for the receiving one (see startHandover). Nil: none.
	handoverPair func() (send, receive *os.File, err error)
}

// envOptions is what the real env needs from the supervisor's options.
type envOptions struct {
	executable     string
	args, env      []string
	stdout, stderr *os.File
	// report delivers an event to the loop.
	report func(event)
	log    *slog.Logger
}

// workerSpec is what a new worker gets.
type workerSpec struct {
	slot    int
	sockets []*socket
	config  config.Config
}

// workerProc is a started worker process.
type workerProc interface {
	pid() int
	signal(sig syscall.Signal)
	// send delivers a message (with a socket for a lend) without blocking
	// the loop for long: a worker that does not read is hung anyway.
	send(m control.Message) error
	// fetchStats asks the worker for its counters, for a metrics scrape;
	// lastStats are the last ones it reported.
	fetchStats(ctx context.Context) control.Stats
	lastStats() control.Stats
}

// successorProc is a binary upgrade's new supervisor.
type successorProc interface {
	// pid is 0 until the launcher reported it.
	pid() int
	// accept tells it to take over.
	accept() error
	// refuse tells it why it will not take over and ends it: an accepted
	// one is killed and gone when refuse returns; any other is stopped
	// gracefully (it may serve clients already), then killed if it lingers.
	refuse(why string, accepted bool)
	// done lets go of it once it took over.
	done()
	// passOn writes, once it took over, the requests that waited for the
	// upgrade on the channel (handoff protocol 3), before done.
	passOn(sigs []syscall.Signal) error
	// signal passes a request on as a signal: to a release 0.3.0
	// successor, which reads none on the channel.
	signal(sig syscall.Signal)
}

// stdEnv is the real operating system.
func stdEnv(o envOptions) env {
	var reserve fdReserve
	reserve.fill()
	return env{
		now:       time.Now,
		checkFree: checkAddressFree,
		bind:      bindSocket,
		startWorker: func(w *worker, spec workerSpec) (workerProc, error) {
			return reserve.withReserve(func() (workerProc, error) {
				return startWorkerProcess(o, w, spec)
			}, func() {
				o.log.Warn("out of descriptors: using the reserve to start a worker", "slot", spec.slot)
			})
		},
		inspect:      inspectBinary,
		handoverPair: handover.Pair,
		startSuccessor: func(u handoff.Upgrade) (successorProc, error) {
			return startSuccessorProcess(o, u)
		},
	}
}
