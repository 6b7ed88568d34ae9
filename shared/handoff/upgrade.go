package handoff

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// A binary upgrade's new supervisor finds the listening sockets at fds
// 3 .. 3+n-1, n in envUpgradeSockets, and the readiness pipe right after
// them.
const (
	upgradeFirstFD       = 3
	envUpgradeSockets    = "LANCELOT_UPGRADE_SOCKETS"
	envUpgradeRunning    = "LANCELOT_UPGRADE_RUNNING"
	envUpgradeConfigured = "LANCELOT_UPGRADE_CONFIGURED"
	envUpgradeLauncher   = "LANCELOT_UPGRADE_LAUNCHER"
)

// Upgrade is what a supervisor hands its successor.
type Upgrade struct {
	// Sockets are every listening socket, in the old supervisor's order,
	// so socket ids mean the same on both sides.
	Sockets []*os.File
	// Ready is the write end of the readiness pipe (see ReadReport).
	Ready *os.File
	// Running is the worker count the old supervisor ran (after
	// TTIN/TTOU); Configured is the count its configuration asked for.
	// The successor runs Running workers unless its own configuration
	// asks for a different count than Configured, i.e. it was changed.
	Running, Configured int
	// Launcher is the pid of the process that started the successor and
	// exits at once (see WaitReparented); 0 when it was started directly.
	Launcher int
}

// Command returns the command that starts exe with args as the successor.
// env is filtered of what described the old process only.
func (u Upgrade) Command(exe string, args, env []string) *exec.Cmd {
	cmd := exec.Command(exe, args...)
	cmd.ExtraFiles = append(append([]*os.File(nil), u.Sockets...), u.Ready)
	cmd.Env = append(upgradeEnv(env),
		envUpgradeSockets+"="+strconv.Itoa(len(u.Sockets)),
		envUpgradeRunning+"="+strconv.Itoa(u.Running),
		envUpgradeConfigured+"="+strconv.Itoa(u.Configured),
	)
	if u.Launcher > 0 {
		cmd.Env = append(cmd.Env, envUpgradeLauncher+"="+strconv.Itoa(u.Launcher))
	}
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

// ReadUpgrade decodes what Command encoded; it returns nil, nil when this
// process is not a successor. The readiness pipe is made close-on-exec and
// the variables are unset, so the workers inherit neither.
func ReadUpgrade() (*Upgrade, error) {
	raw, ok := os.LookupEnv(envUpgradeSockets)
	if !ok {
		return nil, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 {
		return nil, fmt.Errorf("%s=%q: not a socket count", envUpgradeSockets, raw)
	}
	u := &Upgrade{}
	for i := range n {
		u.Sockets = append(u.Sockets, os.NewFile(uintptr(upgradeFirstFD+i), "inherited-listener"))
	}
	readyFD := upgradeFirstFD + n
	unix.CloseOnExec(readyFD)
	u.Ready = os.NewFile(uintptr(readyFD), "upgrade-ready")
	u.Launcher, _ = strconv.Atoi(os.Getenv(envUpgradeLauncher))
	u.Running, _ = strconv.Atoi(os.Getenv(envUpgradeRunning))
	u.Configured, _ = strconv.Atoi(os.Getenv(envUpgradeConfigured))
	for _, k := range []string{envUpgradeSockets, envUpgradeRunning, envUpgradeConfigured, envUpgradeLauncher} {
		os.Unsetenv(k)
	}
	return u, nil
}

// WaitReparented waits, at most timeout, until the launcher that started
// this successor has exited and the successor has a new parent (systemd,
// when it is PID 1). systemd treats a MAINPID= from a process that is not
// its child as alien: it would not wait for it to stop. It reports whether
// the launcher is gone.
func (u *Upgrade) WaitReparented(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for u.Launcher > 0 && os.Getppid() == u.Launcher {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// The readiness pipe carries lines: "pid N" from the launcher once it has
// started the successor (pid N), then "ready" from the successor once every
// one of its workers accepts. EOF before "ready" means the successor died.
const (
	reportPID   = "pid "
	reportReady = "ready"
)

// ReportPID tells the old supervisor the successor's pid.
func ReportPID(w io.Writer, pid int) error {
	_, err := fmt.Fprintf(w, "%s%d\n", reportPID, pid)
	return err
}

// ReportReady tells the old supervisor the successor is ready.
func ReportReady(w io.Writer) error {
	_, err := io.WriteString(w, reportReady+"\n")
	return err
}

// errNotReady is a pipe that ended without "ready".
var errNotReady = errors.New("new supervisor closed its readiness pipe without being ready")

// ReadReport reads the readiness pipe: onPID is called with the pid the
// launcher reports, and the result is nil once the successor is ready.
func ReadReport(r io.Reader, onPID func(pid int)) error {
	br := bufio.NewReader(io.LimitReader(r, 4096))
	for {
		line, err := br.ReadString('\n')
		switch {
		case strings.HasPrefix(line, reportPID) && err == nil:
			pid, perr := strconv.Atoi(strings.TrimSpace(line[len(reportPID):]))
			if perr != nil || pid <= 0 {
				return fmt.Errorf("readiness pipe: bad line %q", line)
			}
			onPID(pid)
		case line == reportReady+"\n":
			return nil
		case err != nil:
			if errors.Is(err, io.EOF) {
				return errNotReady
			}
			return fmt.Errorf("readiness pipe: %w", err)
		default:
			return fmt.Errorf("readiness pipe: unexpected line %q", line)
		}
	}
}
