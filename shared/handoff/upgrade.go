package handoff

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The environment of the upgrade handoff (see protocol.go). The sockets are
// at fds upgradeFirstFD .. upgradeFirstFD+n-1, the channel right after.
const (
	upgradeFirstFD = 3
	// Version 1 (release 0.2.0), kept as it was.
	envFDs     = "LANCELOT_UPGRADE_FDS"
	envReadyFD = "LANCELOT_UPGRADE_READY_FD"
	envWorkers = "LANCELOT_UPGRADE_WORKERS"
	// Version 2.
	envProtocols  = "LANCELOT_UPGRADE_PROTOCOLS"
	envConfigured = "LANCELOT_UPGRADE_CONFIGURED"
	envFrom       = "LANCELOT_UPGRADE_FROM"
	envLauncher   = "LANCELOT_UPGRADE_LAUNCHER"
)

// Upgrade is what a supervisor hands its successor, and what the successor
// finds.
type Upgrade struct {
	// Protocol is the version the successor speaks: what it chose, on its
	// side; what it announced, on the predecessor's.
	Protocol int
	// Sockets are every listening socket, in the predecessor's order. The
	// successor has checked each with the kernel (see CheckListener).
	Sockets []*os.File
	// Channel is the successor's end of the handoff channel: a stream
	// socket (version 2) or the write end of a pipe (a version 1
	// predecessor).
	Channel *os.File
	// Running is the worker count the predecessor ran (after TTIN/TTOU);
	// Configured is the count its configuration asked for (0 from a
	// version 1 predecessor, which told only Running).
	Running, Configured int
	// From is the predecessor's release ("" from version 1).
	From string
	// Launcher is the pid of the process that started the successor and
	// exits at once; 0 when none did.
	Launcher int
}

// NewChannel returns the two ends of a handoff channel: the predecessor
// keeps the first, the successor gets the second (Upgrade.Channel).
func NewChannel() (*os.File, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("handoff channel: %w", err)
	}
	// Ours non-blocking, so that Close interrupts a reader; the
	// successor's end is another socket, left as a child expects it.
	unix.SetNonblock(fds[0], true)
	return os.NewFile(uintptr(fds[0]), "handoff"), os.NewFile(uintptr(fds[1]), "handoff-successor"), nil
}

// Command returns the command that starts exe with args as the successor,
// speaking both versions: a version 1 successor reads the variables it
// knows and ignores the others. env is filtered of what described the old
// process only.
func (u Upgrade) Command(exe string, args, env []string, release string) *exec.Cmd {
	n := len(u.Sockets)
	cmd := exec.Command(exe, args...)
	cmd.ExtraFiles = append(append([]*os.File(nil), u.Sockets...), u.Channel)
	cmd.Env = append(upgradeEnv(env),
		envFDs+"="+strconv.Itoa(n),
		envReadyFD+"="+strconv.Itoa(upgradeFirstFD+n),
		envWorkers+"="+strconv.Itoa(u.Running),
		envProtocols+"="+strconv.Itoa(Protocol),
		envConfigured+"="+strconv.Itoa(u.Configured),
		envFrom+"="+release,
	)
	return cmd
}

// upgradeEnv keeps NOTIFY_SOCKET (the successor notifies systemd) but
// drops the variables that describe the old process only.
func upgradeEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if hasAnyPrefix(kv, "LISTEN_", "LANCELOT_UPGRADE_", "LANCELOT_WORKER_", "WATCHDOG_PID=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// ReadUpgrade is a successor's side of the handoff's start: it returns nil,
// nil when this process is not a successor. Otherwise it chooses the
// version, announces it ("hello", before anything else is decided), and
// checks every inherited descriptor with the kernel. What it cannot take
// over it refuses on the channel, and returns as the error. The channel
// and the sockets are made close-on-exec and the variables unset, so the
// workers inherit none of them.
func ReadUpgrade(release string) (*Upgrade, error) {
	raw, ok := os.LookupEnv(envFDs)
	if !ok {
		return nil, nil
	}
	defer unsetUpgradeEnv()
	u, err := decodeUpgrade(raw)
	if err != nil {
		return nil, err
	}
	if err := u.chooseProtocol(os.Getenv(envProtocols), release); err != nil {
		return nil, err
	}
	for i := range u.Sockets {
		fd := upgradeFirstFD + i
		unix.CloseOnExec(fd)
		if _, err := CheckListener(fd); err != nil {
			err = fmt.Errorf("inherited fd %d: %w", fd, err)
			u.refuse(err)
			return nil, err
		}
		u.Sockets[i] = os.NewFile(uintptr(fd), "inherited-listener")
	}
	return u, nil
}

// decodeUpgrade reads the variables both versions share.
func decodeUpgrade(rawFDs string) (*Upgrade, error) {
	n, err := strconv.Atoi(rawFDs)
	if err != nil || n < 1 {
		return nil, fmt.Errorf("%s=%q: not a socket count", envFDs, rawFDs)
	}
	readyFD := upgradeFirstFD + n
	if raw := os.Getenv(envReadyFD); raw != "" {
		if readyFD, err = strconv.Atoi(raw); err != nil || readyFD < upgradeFirstFD+n {
			return nil, fmt.Errorf("%s=%q: not a descriptor after the sockets", envReadyFD, raw)
		}
	}
	if _, err := unix.FcntlInt(uintptr(readyFD), unix.F_GETFD, 0); err != nil {
		return nil, fmt.Errorf("handoff channel fd %d: %w", readyFD, err)
	}
	unix.CloseOnExec(readyFD)
	// Non-blocking, so that the *os.File is pollable and its reads take a
	// deadline.
	unix.SetNonblock(readyFD, true)
	u := &Upgrade{Sockets: make([]*os.File, n), Channel: os.NewFile(uintptr(readyFD), "handoff")}
	u.Running, _ = strconv.Atoi(os.Getenv(envWorkers))
	u.Configured, _ = strconv.Atoi(os.Getenv(envConfigured))
	u.Launcher, _ = strconv.Atoi(os.Getenv(envLauncher))
	u.From = os.Getenv(envFrom)
	return u, nil
}

// chooseProtocol picks the newest version both sides speak and announces
// it; no offer at all is a version 1 predecessor.
func (u *Upgrade) chooseProtocol(offer, release string) error {
	if offer == "" {
		u.Protocol = LegacyProtocol
		return nil
	}
	for _, f := range strings.Split(offer, ",") {
		if v, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && v != LegacyProtocol && Speaks(v) && v > u.Protocol {
			u.Protocol = v
		}
	}
	if u.Protocol == 0 {
		err := fmt.Errorf("no handoff protocol in common: the old supervisor offers %s, lancelot %s speaks %d and %d",
			offer, release, LegacyProtocol, Protocol)
		Refuse(u.Channel, err.Error())
		return err
	}
	return writeLine(u.Channel, lineHello, strconv.Itoa(u.Protocol), release)
}

// refuse tells a version 2 predecessor why this successor gives up; a
// version 1 one learns it from the exit.
func (u *Upgrade) refuse(err error) {
	if u.Protocol >= Protocol {
		Refuse(u.Channel, err.Error())
	}
}

func unsetUpgradeEnv() {
	for _, k := range []string{envFDs, envReadyFD, envWorkers, envProtocols, envConfigured, envFrom, envLauncher} {
		os.Unsetenv(k)
	}
}

// verdictTimeout bounds the wait for the predecessor's answer: it answers
// at once, unless it is dead or hung.
const verdictTimeout = 15 * time.Second

// Ready tells the predecessor every worker accepts, then waits for its
// verdict: nil when it accepted, a *RefusedError when it refused,
// ErrPredecessorGone when it died first. A version 1 predecessor says
// nothing: it has accepted once it read the byte and closed its end. The
// caller announces itself to systemd first for a version 1 predecessor
// (which retires as soon as it read the byte) and after for version 2
// (whose predecessor sends MAINPID= before it accepts).
func (u *Upgrade) Ready() error {
	if u.Protocol == LegacyProtocol {
		if _, err := u.Channel.Write([]byte{legacyReady}); err != nil {
			return fmt.Errorf("tell the old supervisor: %w", err)
		}
		waitPeerClosed(u.Channel, verdictTimeout)
		return nil
	}
	if err := writeLine(u.Channel, lineReady); err != nil {
		return fmt.Errorf("tell the old supervisor: %w", err)
	}
	u.Channel.SetReadDeadline(time.Now().Add(verdictTimeout))
	if err := readVerdict(u.Channel); err != nil {
		return err
	}
	u.waitReparented()
	return nil
}

// Serving tells a version 2 predecessor the successor has taken over, and
// closes the channel.
func (u *Upgrade) Serving() error {
	defer u.Channel.Close()
	if u.Protocol == LegacyProtocol {
		return nil
	}
	return writeLine(u.Channel, lineServing)
}

// Close closes the channel without a word: the predecessor reads EOF.
func (u *Upgrade) Close() {
	u.Channel.Close()
}

// waitPeerClosed waits until the other end of f is closed (a pipe's write
// end then polls POLLERR, a socket POLLHUP), at most timeout.
func waitPeerClosed(f *os.File, timeout time.Duration) {
	sc, err := f.SyscallConn()
	if err != nil {
		return
	}
	sc.Control(func(fd uintptr) {
		pfd := []unix.PollFd{{Fd: int32(fd)}}
		deadline := time.Now().Add(timeout)
		for pfd[0].Revents == 0 && time.Now().Before(deadline) {
			if _, err := unix.Poll(pfd, int(time.Until(deadline).Milliseconds())+1); err != nil && !errors.Is(err, unix.EINTR) {
				return
			}
		}
	})
}

// waitReparented waits, at most a second, until the launcher that started
// this successor has exited, so that the successor has a new parent
// (systemd, when it is PID 1) before it tells systemd it is the main
// process: systemd treats a main pid that is not its own child as alien,
// and on stop would SIGKILL it instead of waiting for it to drain. It
// waits on a pidfd, which becomes readable when the launcher exits.
func (u *Upgrade) waitReparented() {
	if u.Launcher <= 0 || os.Getppid() != u.Launcher {
		return
	}
	fd, err := unix.PidfdOpen(u.Launcher, 0)
	if err != nil {
		return // gone already
	}
	defer unix.Close(fd)
	unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 1000)
}
