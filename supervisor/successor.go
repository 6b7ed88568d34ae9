package supervisor

import (
	"bytes"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/camelot/lancelot/shared/handoff"
	"github.com/camelot/lancelot/shared/version"
)

// lancelotMain is the main package every lancelot binary is built from.
const lancelotMain = "github.com/camelot/lancelot/cmd/lancelot"

type binaryKind int

const (
	binaryLancelot binaryKind = iota + 1 // a Go binary built from lancelotMain
	binaryUnknown                        // not a Go binary: a script, say, that may start lancelot
	binaryOther                          // another Go program, or no program at all
)

// binaryInfo is what a binary upgrade finds at the executable's path.
type binaryInfo struct {
	kind binaryKind
	what string // for the log: "lancelot", "a Go program built from X", ...
}

// inspectBinary reads the Go build info of the file an upgrade would start,
// without running it: another Go program is refused at once, and only a
// file known to be lancelot may stay silent until it is ready (release
// 0.2.0 says no hello).
func inspectBinary(path string) binaryInfo {
	bi, err := buildinfo.ReadFile(path)
	if err == nil {
		if bi.Path == lancelotMain {
			return binaryInfo{kind: binaryLancelot, what: "lancelot built with " + bi.GoVersion}
		}
		return binaryInfo{kind: binaryOther, what: fmt.Sprintf("a Go program built from %s", bi.Path)}
	}
	f, err := os.Open(path)
	if err != nil {
		return binaryInfo{kind: binaryOther, what: err.Error()}
	}
	defer f.Close()
	head := make([]byte, 64)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte("#!")):
		line, _, _ := bytes.Cut(head, []byte("\n"))
		return binaryInfo{kind: binaryUnknown, what: fmt.Sprintf("a script (%q)", line)}
	case bytes.HasPrefix(head, []byte("\x7fELF")):
		return binaryInfo{kind: binaryUnknown, what: "an executable that is not a Go program"}
	}
	return binaryInfo{kind: binaryOther, what: "not an executable"}
}

// successorProcess is a real successor. It is started through a launcher,
// this binary's hidden `upgrade-launch` command, which starts the new
// binary, reports its pid on the channel and exits at once: the successor
// is then re-parented (to systemd, when it is PID 1) before it becomes the
// main process. Two goroutines report on it: one reads the channel, one
// waits for the successor's exit on a pidfd.
type successorProcess struct {
	launcher *exec.Cmd
	channel  *os.File
	report   func(event)
	stopWait *os.File // closing it ends the exit watcher
	// readDone is closed when readChannel returns: every report it read
	// has reached the loop.
	readDone chan struct{}

	mu   sync.Mutex
	pidv int
	fd   *pidfd // the successor, once the launcher reported it
}

// startSuccessorProcess starts the launcher with u; the successor's reports
// and exit reach the loop through report.
func startSuccessorProcess(o envOptions, u handoff.Upgrade) (*successorProcess, error) {
	local, remote, err := handoff.NewChannel()
	if err != nil {
		return nil, err
	}
	defer remote.Close()
	u.Channel = remote
	args := append([]string{"upgrade-launch", "--", o.executable}, o.args...)
	cmd := u.Command("/proc/self/exe", args, o.env, version.Version)
	cmd.Args[0] = o.executable
	cmd.Stdout, cmd.Stderr = o.stdout, o.stderr
	if err := handoff.Start(cmd); err != nil {
		local.Close()
		return nil, fmt.Errorf("start upgrade launcher: %w", err)
	}
	p := &successorProcess{launcher: cmd, channel: local, report: o.report, readDone: make(chan struct{})}
	go cmd.Wait() // the launcher exits as soon as the successor started
	go p.readChannel()
	return p, nil
}

// readChannel turns what the successor says into events until the channel
// ends.
func (p *successorProcess) readChannel() {
	defer close(p.readDone)
	rd := handoff.NewChannelReader(p.channel)
	defer rd.Close()
	for {
		rep, err := rd.Next()
		if err != nil {
			p.report(event{kind: eventSuccessorFailed, successor: p, err: err})
			return
		}
		if rep.Kind == handoff.ReportPID {
			p.setPID(rep.PID)
		}
		p.report(event{kind: eventSuccessorReport, successor: p, report: rep})
	}
}

func (p *successorProcess) setPID(pid int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fd != nil {
		return
	}
	p.pidv, p.fd = pid, openPidfd(pid)
	if p.fd == nil {
		go p.report(event{kind: eventSuccessorFailed, successor: p, err: errors.New("it exited at once")})
		return
	}
	// The watcher polls a duplicate of its own, so closing p.fd never
	// pulls a descriptor from under it.
	dup, err := handoff.DupCloexec(uintptr(p.fd.fd))
	if err != nil {
		return // no exit watcher: the channel and the deadlines remain
	}
	r, w, err := os.Pipe()
	if err != nil {
		unix.Close(dup)
		return
	}
	p.stopWait = w
	go p.watchExit(dup, r)
}

// exitReportDelay is how long the exit watcher leaves the channel's reader
// to report a successor's last words and the channel's end.
const exitReportDelay = 500 * time.Millisecond

// watchExit reports the successor's exit, which a pidfd signals by
// becoming readable, until stop's other end is closed. The channel alone
// would miss an exit when the successor's own children hold it open.
func (p *successorProcess) watchExit(pidfd int, stop *os.File) {
	defer unix.Close(pidfd)
	defer stop.Close()
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}, {Fd: int32(stop.Fd()), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if err == nil || !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if fds[0].Revents == 0 {
		return
	}
	// What it said before it exited (a refusal with its reason) comes
	// first: the channel ends right after, unless a child of its own
	// holds it open.
	select {
	case <-p.readDone:
		return // the reader reported the end
	case <-time.After(exitReportDelay):
	}
	p.report(event{kind: eventSuccessorFailed, successor: p, err: errors.New("it exited")})
}

func (p *successorProcess) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pidv
}

func (p *successorProcess) accept() error {
	return handoff.Accept(p.channel)
}

func (p *successorProcess) passOn(sigs []syscall.Signal) error {
	return handoff.WriteRequests(p.channel, sigs)
}

func (p *successorProcess) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fd.signal(sig)
}

// refusedGrace is how long a refused successor that was not accepted has
// to drain the clients its workers took (TERM) before it is killed.
const refusedGrace = 30 * time.Second

// refuse tells the successor why, and ends it (the launcher instead, if
// it has not reported the successor yet: it reports right after starting
// it, so that almost always means none is ever started). One that was
// accepted may be acting on the accept: it is killed, and refuse returns
// once it is gone (at most handoff.TimeoutGone), so that the caller takes
// the pid file and systemd's main pid back only after. Any other gets TERM,
// so that the clients its workers already took are served, and is killed
// if it is still there after refusedGrace.
func (p *successorProcess) refuse(why string, accepted bool) {
	handoff.Refuse(p.channel, why)
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.fd == nil:
		p.launcher.Process.Kill()
	case accepted:
		p.fd.kill()
		p.fd.waitGone(handoff.TimeoutGone)
	default:
		p.fd.signal(syscall.SIGTERM)
		if dup, err := handoff.DupCloexec(uintptr(p.fd.fd)); err == nil {
			go killAfter(&pidfd{fd: dup}, refusedGrace)
		}
	}
	p.release()
}

// killAfter kills the process unless it is gone within grace, then lets
// go of the pidfd.
func killAfter(p *pidfd, grace time.Duration) {
	defer p.close()
	p.waitGone(grace)
	p.kill()
}

// release lets go of what watched the successor, once the upgrade is over
// either way: its exit watcher, the channel and its pidfd. Call with mu
// held, after any request was passed on to it.
func (p *successorProcess) release() {
	if p.stopWait != nil {
		p.stopWait.Close()
		p.stopWait = nil
	}
	p.channel.Close()
	p.fd.close()
}

// done releases a successor that took over, once the requests that waited
// for the upgrade were passed on to it.
func (p *successorProcess) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.release()
}

// waitGone waits until the process has exited (its pidfd is readable), at
// most timeout.
func (p *pidfd) waitGone(timeout time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fd < 0 {
		return
	}
	deadline := time.Now().Add(timeout)
	fds := []unix.PollFd{{Fd: int32(p.fd), Events: unix.POLLIN}}
	for fds[0].Revents == 0 && time.Now().Before(deadline) {
		if _, err := unix.Poll(fds, int(time.Until(deadline).Milliseconds())+1); err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
	}
}
