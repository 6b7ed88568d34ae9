// Package proc reads what lancelot's commands and tests need of other
// processes from /proc, through prometheus/procfs: whether one runs, its
// parent, children, command line, threads' states, and whether it is a
// lancelot supervisor (Identify).
//
// Not a public API: it serves the lancelot commands and their tests only.
package proc

import (
	"debug/buildinfo"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/procfs"
)

// Alive reports whether pid runs: it exists and is not a zombie.
func Alive(pid int) bool {
	st, err := stat(pid)
	return err == nil && st.State != "Z" && st.State != "X"
}

// Exists reports whether pid is in /proc, a zombie included: once it is
// gone its parent has reaped it.
func Exists(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}

// Parent returns pid's parent, or 0 when pid is gone.
func Parent(pid int) int {
	st, err := stat(pid)
	if err != nil {
		return 0
	}
	return st.PPID
}

// Children returns pid's children, from every thread's children file.
func Children(pid int) []int {
	var out []int
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, field := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(field); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// Cmdline returns pid's arguments, argv[0] first; nil when pid is gone.
func Cmdline(pid int) []string {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return nil
	}
	args, _ := p.CmdLine()
	return args
}

// AllThreadsStopped reports whether every thread of pid is stopped (T).
func AllThreadsStopped(pid int) bool {
	threads, err := procfs.AllThreads(pid)
	if err != nil || len(threads) == 0 {
		return false
	}
	for _, t := range threads {
		if st, err := t.Stat(); err != nil || st.State != "T" {
			return false
		}
	}
	return true
}

// ChildRunning returns a child of pid whose first argument is arg1 (a
// `lancelot serve` started by a supervisor, say), or 0.
func ChildRunning(pid int, arg1 string) int {
	for _, c := range Children(pid) {
		if args := Cmdline(c); len(args) > 1 && args[1] == arg1 {
			return c
		}
	}
	return 0
}

func stat(pid int) (procfs.ProcStat, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return procfs.ProcStat{}, err
	}
	return p.Stat()
}

// lancelotMain is the import path of lancelot's main package, as a binary's
// Go build info names it.
const lancelotMain = "github.com/camelot/lancelot/cmd/lancelot"

// Identity is what a process runs, as `lancelot reload`, `upgrade` and
// `status` need to know before they signal it or report on it.
type Identity struct {
	PID int
	// Program is the name to show: the executable's base name, else
	// argv[0]'s, else the kernel's comm.
	Program string
	// Args is the command line, argv[0] first.
	Args []string
	// Lancelot: the executable is a lancelot binary, by its Go build info
	// (which survives a rename and a deleted file), or by its name when
	// the executable cannot be read (another user's process).
	Lancelot bool
	// Started is when the process started; zero if unknown.
	Started time.Time
}

// Supervisor reports whether the process is a lancelot supervisor: a
// lancelot binary running `serve`.
func (id Identity) Supervisor() bool {
	return id.Lancelot && len(id.Args) > 1 && id.Args[1] == "serve"
}

// ErrGone reports a pid that no process has, or a zombie.
var ErrGone = errors.New("no such process")

// Identify reads what pid runs from /proc. It returns ErrGone when pid is
// not running.
func Identify(pid int) (Identity, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return Identity{}, fmt.Errorf("pid %d: %w", pid, ErrGone)
	}
	st, err := p.Stat()
	if err != nil || st.State == "Z" || st.State == "X" {
		return Identity{}, fmt.Errorf("pid %d: %w", pid, ErrGone)
	}
	id := Identity{PID: pid, Program: st.Comm}
	id.Args, _ = p.CmdLine()
	if len(id.Args) > 0 {
		id.Program = filepath.Base(id.Args[0])
	}
	if exe, err := p.Executable(); err == nil && exe != "" {
		id.Program = filepath.Base(strings.TrimSuffix(exe, " (deleted)"))
	}
	// /proc/PID/exe opens the running file even once it is replaced or
	// deleted (a package upgrade), so the build info is the binary's own.
	if bi, err := buildinfo.ReadFile(fmt.Sprintf("/proc/%d/exe", pid)); err == nil {
		id.Lancelot = bi.Path == lancelotMain
	} else if errors.Is(err, fs.ErrPermission) {
		id.Lancelot = strings.HasPrefix(id.Program, "lancelot")
	}
	if t, err := st.StartTime(); err == nil {
		id.Started = time.Unix(0, int64(t*1e9))
	}
	return id, nil
}
