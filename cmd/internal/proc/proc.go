// Package proc reads what lancelot's commands and tests need of other
// processes from /proc, through prometheus/procfs: whether one runs, its
// parent, children, command line and threads' states.
//
// Not a public API: it serves the lancelot commands and their tests only.
package proc

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

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
