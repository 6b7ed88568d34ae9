package supervisor

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Environment a binary upgrade passes to the new supervisor. The inherited
// sockets are fds 3 .. 3+n-1 and the readiness pipe follows them.
const (
	// EnvUpgradeFDs is the number of inherited listening sockets.
	EnvUpgradeFDs = "LANCELOT_UPGRADE_FDS"
	// EnvUpgradeReadyFD is the pipe the new supervisor writes one byte to
	// once every worker is ready.
	EnvUpgradeReadyFD = "LANCELOT_UPGRADE_READY_FD"
	// EnvUpgradeWorkers carries the running worker count, so a TTIN/TTOU
	// count survives the upgrade.
	EnvUpgradeWorkers = "LANCELOT_UPGRADE_WORKERS"
)

// upgrade is a binary upgrade in flight: the new supervisor, started from
// the binary on disk, has the sockets but has not said it is ready.
type upgrade struct {
	cmd      *exec.Cmd
	deadline time.Time
}

func (s *Supervisor) startUpgrade() {
	switch {
	case s.upgrade != nil:
		s.log.Warn("USR2 refused: a binary upgrade is already in flight", "new_pid", s.upgrade.cmd.Process.Pid)
		return
	case s.stopping != 0 || s.handedOver:
		s.log.Warn("USR2 refused: supervisor is stopping")
		return
	}
	u, readyR, err := s.startNewSupervisor()
	if err != nil {
		s.log.Error("binary upgrade failed to start; still serving", "err", err)
		return
	}
	s.upgrade = u
	s.log.Info("binary upgrade started", "old_pid", os.Getpid(), "new_pid", u.cmd.Process.Pid, "binary", s.opts.Executable)
	s.opts.Notify("STATUS=binary upgrade in progress (new supervisor pid " + strconv.Itoa(u.cmd.Process.Pid) + ")")
	go func() {
		defer readyR.Close()
		b := make([]byte, 1)
		if n, err := readyR.Read(b); n == 1 {
			s.send(event{kind: eventUpgradeReady, upgrade: u})
		} else {
			if err == nil || errors.Is(err, io.EOF) {
				err = errors.New("new supervisor closed its readiness pipe without being ready")
			}
			s.send(event{kind: eventUpgradeFailed, upgrade: u, err: err})
		}
	}()
	go func() {
		err := u.cmd.Wait()
		s.send(event{kind: eventUpgradeFailed, upgrade: u, err: fmt.Errorf("new supervisor exited: %s", exitStatus(err))})
	}()
}

func (s *Supervisor) startNewSupervisor() (*upgrade, *os.File, error) {
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("readiness pipe: %w", err)
	}
	defer readyW.Close()
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, sock := range s.sockets {
		f, err := sock.file()
		if err != nil {
			readyR.Close()
			return nil, nil, err
		}
		files = append(files, f)
	}
	cmd := exec.Command(s.opts.Executable, s.opts.Args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.ExtraFiles = append(files, readyW)
	cmd.Env = append(upgradeEnv(s.opts.Env),
		EnvUpgradeFDs+"="+strconv.Itoa(len(files)),
		EnvUpgradeReadyFD+"="+strconv.Itoa(3+len(files)),
		EnvUpgradeWorkers+"="+strconv.Itoa(len(s.slots)),
	)
	if err := cmd.Start(); err != nil {
		readyR.Close()
		return nil, nil, fmt.Errorf("start %s: %w", s.opts.Executable, err)
	}
	return &upgrade{cmd: cmd, deadline: time.Now().Add(readyTimeout)}, readyR, nil
}

// upgradeEnv keeps NOTIFY_SOCKET (the new supervisor notifies systemd) but
// drops the variables that describe this process only.
func upgradeEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if strings.HasPrefix(kv, "LISTEN_") || strings.HasPrefix(kv, "LANCELOT_UPGRADE") || strings.HasPrefix(kv, "WATCHDOG_PID=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func (s *Supervisor) upgradeEvent(ev event) {
	if ev.upgrade != s.upgrade || s.upgrade == nil {
		return // a late report about an upgrade already settled
	}
	pid := s.upgrade.cmd.Process.Pid
	if ev.kind == eventUpgradeFailed {
		s.log.Error("binary upgrade failed; still serving", "new_pid", pid, "err", ev.err)
		s.cancelUpgrade("")
		s.opts.Notify(s.statusLine())
		return
	}
	s.upgrade = nil
	s.handedOver = true
	s.log.Info("binary upgrade complete; old supervisor retiring", "old_pid", os.Getpid(), "new_pid", pid)
	s.stop(sigTerm)
}

func (s *Supervisor) upgradeTimedOut() {
	s.log.Error("binary upgrade: new supervisor not ready in time; killing it, still serving", "new_pid", s.upgrade.cmd.Process.Pid, "timeout", readyTimeout)
	s.cancelUpgrade("")
}

// cancelUpgrade kills a new supervisor that has not taken over.
func (s *Supervisor) cancelUpgrade(why string) {
	if s.upgrade == nil {
		return
	}
	if why != "" {
		s.log.Warn("binary upgrade cancelled", "reason", why)
	}
	_ = s.upgrade.cmd.Process.Kill()
	s.upgrade = nil
}
