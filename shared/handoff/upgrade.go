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

// The descriptor layout of the upgrade handoff: index i of ExtraFiles is
// fd 3+i. The listening sockets come first, in the predecessor's order,
// then the channel.
const firstFD = 3

// socketFD is the descriptor of socket i.
func socketFD(i int) int { return firstFD + i }

// channelFD is the channel's descriptor after n sockets.
func channelFD(n int) int { return firstFD + n }

// The environment table of the upgrade handoff. Every name starts with
// LANCELOT_UPGRADE_: release 0.3.0 passes on to its own successor every
// variable but those, so none of these outlives the handoff it describes.
const (
	envFDs        = "LANCELOT_UPGRADE_FDS"        // the socket count (since 1)
	envReadyFD    = "LANCELOT_UPGRADE_READY_FD"   // the channel's descriptor (since 1)
	envWorkers    = "LANCELOT_UPGRADE_WORKERS"    // the running worker count (since 1)
	envProtocols  = "LANCELOT_UPGRADE_PROTOCOLS"  // the versions offered (since 2)
	envConfigured = "LANCELOT_UPGRADE_CONFIGURED" // the configured worker count (since 2)
	envFrom       = "LANCELOT_UPGRADE_FROM"       // the predecessor's release (since 2)
	envLauncher   = "LANCELOT_UPGRADE_LAUNCHER"   // the launcher's pid, set by it (since 2)
	envActivated  = "LANCELOT_UPGRADE_ACTIVATED"  // the socket-activated sockets' indexes (since 3)
)

// upgradeVars is every variable of the table, for unsetting them.
var upgradeVars = []string{envFDs, envReadyFD, envWorkers, envProtocols, envConfigured, envFrom, envLauncher, envActivated}

// Upgrade is what a supervisor hands its successor, and what the successor
// finds.
type Upgrade struct {
	// Protocol is the version the successor chose (its side only).
	Protocol int
	// Sockets are every listening socket, in the predecessor's order. The
	// successor has checked each with the kernel (see CheckListener).
	Sockets []*os.File
	// Activated[i] reports whether Sockets[i] came from systemd (socket
	// activation): its address belongs to the socket unit. Nil means none.
	Activated []bool
	// ActivatedHow says, on the successor's side, how it learnt which
	// sockets are systemd's: from the predecessor, or from what the
	// kernel and a release 0.3.0 predecessor's environment show.
	ActivatedHow string
	// Channel is the successor's end of the handoff channel.
	Channel *os.File
	// Running is the worker count the predecessor ran (after TTIN/TTOU);
	// Configured is the count its configuration asked for.
	Running, Configured int
	// From is the predecessor's release.
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
// offering every version spoken. env is filtered of what described the
// old process only.
func (u Upgrade) Command(exe string, args, env []string, release string) *exec.Cmd {
	n := len(u.Sockets)
	cmd := exec.Command(exe, args...)
	cmd.ExtraFiles = append(append([]*os.File(nil), u.Sockets...), u.Channel)
	cmd.Env = append(upgradeEnv(env),
		envFDs+"="+strconv.Itoa(n),
		envReadyFD+"="+strconv.Itoa(channelFD(n)),
		envWorkers+"="+strconv.Itoa(u.Running),
		envProtocols+"="+offer(),
		envConfigured+"="+strconv.Itoa(u.Configured),
		envFrom+"="+release,
		envActivated+"="+formatIndexes(u.Activated),
	)
	return cmd
}

// formatIndexes lists the indexes where set is true.
func formatIndexes(set []bool) string {
	var s []string
	for i, b := range set {
		if b {
			s = append(s, strconv.Itoa(i))
		}
	}
	return strings.Join(s, ",")
}

// parseIndexes reads formatIndexes' list for n sockets.
func parseIndexes(s string, n int) ([]bool, error) {
	set := make([]bool, n)
	if s == "" {
		return set, nil
	}
	for _, f := range strings.Split(s, ",") {
		i, err := strconv.Atoi(f)
		if err != nil || i < 0 || i >= n {
			return nil, fmt.Errorf("%s=%q: not socket indexes below %d", envActivated, s, n)
		}
		set[i] = true
	}
	return set, nil
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

// ErrFromRelease020 is a successor started by release 0.2.0, whose
// handoff protocol 1 this release no longer speaks.
var ErrFromRelease020 = errors.New("the old supervisor is release 0.2.0 (handoff protocol 1), " +
	"which this release cannot take over from: it serves on; upgrade it to release 0.3.0 first, then to this one")

// ReadUpgrade is a successor's side of the handoff's start: it returns nil,
// nil when this process is not a successor. Otherwise it chooses the
// version, announces it ("hello", before anything else is decided), checks
// every inherited descriptor with the kernel, and learns which sockets are
// systemd's. What it cannot take over it refuses on the channel, and
// returns as the error. The channel and the sockets are made close-on-exec
// and the variables unset, so the workers inherit none of them.
func ReadUpgrade(release string) (*Upgrade, error) {
	raw, ok := os.LookupEnv(envFDs)
	if !ok {
		return nil, nil
	}
	defer unsetUpgradeEnv()
	if _, ok := os.LookupEnv(envProtocols); !ok {
		return nil, ErrFromRelease020 // 0.2.0 offers nothing; it reads our exit
	}
	u, err := decodeUpgrade(raw)
	if err != nil {
		return nil, err
	}
	if err := u.chooseProtocol(os.Getenv(envProtocols), release); err != nil {
		return nil, err
	}
	for i := range u.Sockets {
		fd := socketFD(i)
		unix.CloseOnExec(fd)
		if _, err := CheckListener(fd); err != nil {
			return nil, u.Fail(fmt.Errorf("inherited fd %d: %w", fd, err))
		}
		u.Sockets[i] = os.NewFile(uintptr(fd), "inherited-listener")
	}
	if err := u.learnActivated(); err != nil {
		return nil, u.Fail(err)
	}
	return u, nil
}

// learnActivated fills in Activated: from the predecessor when it said
// (release 0.4.0 on), else from what the kernel and the predecessor's
// environment show (see inferActivated).
func (u *Upgrade) learnActivated() error {
	if raw, ok := os.LookupEnv(envActivated); ok {
		set, err := parseIndexes(raw, len(u.Sockets))
		if err != nil {
			return err
		}
		u.Activated, u.ActivatedHow = set, "the old supervisor said which sockets are systemd's"
		return nil
	}
	u.Activated, u.ActivatedHow = inferActivated(u.Sockets)
	return nil
}

// decodeUpgrade reads the variables every version shares.
func decodeUpgrade(rawFDs string) (*Upgrade, error) {
	n, err := strconv.Atoi(rawFDs)
	if err != nil || n < 1 {
		return nil, fmt.Errorf("%s=%q: not a socket count", envFDs, rawFDs)
	}
	readyFD := channelFD(n)
	if raw := os.Getenv(envReadyFD); raw != "" {
		if readyFD, err = strconv.Atoi(raw); err != nil || readyFD < channelFD(n) {
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
// it.
func (u *Upgrade) chooseProtocol(offered, release string) error {
	for _, f := range strings.Split(offered, ",") {
		if v, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && Speaks(v) && v > u.Protocol {
			u.Protocol = v
		}
	}
	if u.Protocol == 0 {
		return u.Fail(fmt.Errorf("no handoff protocol in common: the old supervisor offers %s, lancelot %s speaks %s",
			offered, release, offer()))
	}
	return writeLine(u.Channel, lineHello, strconv.Itoa(u.Protocol), release)
}

// Fail tells the predecessor why this successor gives up, before it has
// taken over, and returns err. Every version this release speaks reads a
// refusal at any point before "serving".
func (u *Upgrade) Fail(err error) error {
	Refuse(u.Channel, err.Error())
	return err
}

// RefuseEarly is Fail for a successor that gives up before it read the
// handoff (its configuration does not load, say): it returns false when
// this process is not a successor, or its predecessor reads no refusals
// (release 0.2.0).
func RefuseEarly(err error) bool {
	raw, ok := os.LookupEnv(envFDs)
	if !ok || os.Getenv(envProtocols) == "" {
		return false
	}
	n, convErr := strconv.Atoi(raw)
	if convErr != nil || n < 1 {
		return false
	}
	ch := channelFD(n)
	if v, convErr := strconv.Atoi(os.Getenv(envReadyFD)); convErr == nil {
		ch = v
	}
	_, werr := unix.Write(ch, []byte(formatLine(lineRefuse, err.Error())))
	return werr == nil
}

func unsetUpgradeEnv() {
	for _, k := range upgradeVars {
		os.Unsetenv(k)
	}
}

// Ready tells the predecessor every worker accepts, then waits for its
// verdict: nil when it accepted, a *RefusedError when it refused,
// ErrPredecessorGone when it died first. Only after an accept may the
// caller write the pid file and tell systemd MAINPID=.
func (u *Upgrade) Ready() error {
	if err := writeLine(u.Channel, lineReady); err != nil {
		return fmt.Errorf("tell the old supervisor: %w", err)
	}
	u.Channel.SetReadDeadline(time.Now().Add(TimeoutVerdict))
	if err := readVerdict(u.Channel); err != nil {
		return err
	}
	u.waitReparented()
	return nil
}

// Serving tells the predecessor the successor has taken over and, when the
// version can, sends it ends (the connection receivers; the caller keeps
// and closes its own copies). Requests then reads what the predecessor
// passes on, and closes the channel.
func (u *Upgrade) Serving(ends []*os.File) error {
	if err := writeLine(u.Channel, lineServing); err != nil {
		return err
	}
	if !Can(u.Protocol).Conns {
		return nil
	}
	return sendConns(u.Channel, ends)
}

// Close closes the channel without a word: the predecessor reads EOF.
func (u *Upgrade) Close() {
	u.Channel.Close()
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
