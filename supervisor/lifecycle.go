package supervisor

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	sigTerm = syscall.SIGTERM
	sigQuit = syscall.SIGQUIT
	sigKill = syscall.SIGKILL
)

// announceReady runs once, when every slot first has a ready worker: the
// pid file is written and systemd (or the old supervisor of an upgrade) is
// told.
func (s *Supervisor) announceReady() {
	s.ready = true
	if err := s.writePIDFile(); err != nil {
		s.log.Error("write pid file", "err", err)
	}
	if s.opts.Watchdog > 0 {
		s.wdNext = time.Now()
	}
	state := "READY=1\n" + s.statusLine()
	if s.opts.UpgradeReady != nil {
		// MAINPID first, so systemd follows us before the old supervisor exits.
		state = "MAINPID=" + strconv.Itoa(os.Getpid()) + "\n" + state
	}
	s.opts.Notify(state)
	s.log.Info("supervisor ready", "pid", os.Getpid(), "workers", len(s.slots), "pids", s.pids())
	if f := s.opts.UpgradeReady; f != nil {
		if _, err := f.Write([]byte{1}); err != nil {
			s.log.Error("tell the old supervisor we are ready", "err", err)
		}
		f.Close()
		s.opts.UpgradeReady = nil
	}
}

// announceServing tells systemd the state after a rollout.
func (s *Supervisor) announceServing(afterReload bool) {
	state := s.statusLine()
	if afterReload {
		state = "READY=1\n" + state
	}
	s.opts.Notify(state)
}

func (s *Supervisor) statusLine() string {
	return fmt.Sprintf("STATUS=serving on %s with %d workers (pids %s)", strings.Join(uniq(s.Addrs()), ", "), len(s.slots), s.pids())
}

func uniq(xs []string) []string {
	var out []string
	for _, x := range xs {
		if len(out) == 0 || out[len(out)-1] != x {
			out = append(out, x)
		}
	}
	return out
}

// stop begins a graceful (SIGTERM) or immediate (SIGQUIT) stop; Run returns
// once every worker has exited.
func (s *Supervisor) stop(how syscall.Signal) {
	if s.stopping == sigQuit || s.stopping == how {
		return
	}
	s.stopping = how
	s.requests = nil
	s.rollout = nil
	s.cancelUpgrade("supervisor stopping")
	if !s.handedOver {
		s.opts.Notify("STOPPING=1\nSTATUS=stopping")
	}
	bound := quitTimeout
	if how == sigTerm {
		c := s.cfg
		bound = c.ShutdownTimeout + c.ReadTimeout + c.WriteTimeout + drainMargin
	}
	deadline := time.Now().Add(bound)
	s.log.Info("supervisor stopping", "mode", map[syscall.Signal]string{sigTerm: "graceful", sigQuit: "immediate"}[how], "workers", s.liveWorkers())
	s.metrics.mu.Lock()
	live := make([]*worker, 0, len(s.metrics.live))
	for w := range s.metrics.live {
		live = append(live, w)
	}
	s.metrics.mu.Unlock()
	for _, w := range live {
		w.draining = true
		if t, ok := s.retiring[w]; !ok || t.After(deadline) {
			s.retiring[w] = deadline
		}
		w.signal(how)
	}
	for _, sl := range s.slots {
		sl.restartAt = time.Time{}
	}
	// Once the workers close their copies, the sockets close and new
	// clients are refused at once instead of queueing for the whole drain
	// with nobody to accept them. (After a binary upgrade the new
	// supervisor holds its own copies, so this closes nothing for clients.)
	s.closeSockets()
}

// killAll ends every worker at once; the last resort when waiting is over.
func (s *Supervisor) killAll() {
	s.metrics.mu.Lock()
	defer s.metrics.mu.Unlock()
	for w := range s.metrics.live {
		w.signal(sigKill)
	}
}

// finish runs after the last worker exited.
func (s *Supervisor) finish() {
	if !s.handedOver {
		s.removePIDFile()
	}
	s.log.Info("supervisor stopped", "pid", os.Getpid())
}

func (s *Supervisor) writePIDFile() error {
	path := s.cfg.PIDFile
	if path == "" {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".lancelot-pid-*")
	if err != nil {
		return fmt.Errorf("pid file %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := fmt.Fprintf(tmp, "%d\n", os.Getpid()); err != nil {
		tmp.Close()
		return fmt.Errorf("pid file %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("pid file %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("pid file %s: %w", path, err)
	}
	// Rename so a reader never sees a half-written file.
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("pid file %s: %w", path, err)
	}
	return nil
}

// removePIDFile removes the pid file only if it is still ours: after a
// binary upgrade it names the new supervisor.
func (s *Supervisor) removePIDFile() {
	path := s.cfg.PIDFile
	if path == "" {
		return
	}
	b, err := os.ReadFile(path)
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		return
	}
	if err := os.Remove(path); err != nil {
		s.log.Warn("remove pid file", "err", err)
	}
}
