// Package pidfile reads and writes lancelot's pid file: one decimal pid
// and a newline. It is the one place the file is parsed, so the
// supervisor (which checks the file still names it before it restores or
// removes it) and the commands that find the supervisor by it (reload,
// upgrade, status) agree on what a valid one is.
//
// Not a public API: this package serves the lancelot binary only.
package pidfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrNoPID is a pid file that does not hold one positive pid.
var ErrNoPID = errors.New("does not hold a pid")

// Read returns the pid path names.
func Read(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return Parse(string(b))
}

// Parse reads a pid file's content: one positive decimal number, with or
// without the newline Write ends it with.
func Parse(content string) (int, error) {
	pid, err := strconv.Atoi(strings.TrimSuffix(content, "\n"))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%.20q %w", content, ErrNoPID)
	}
	return pid, nil
}

// Names reports whether path names pid.
func Names(path string, pid int) bool {
	got, err := Read(path)
	return err == nil && got == pid
}

// Write makes path name pid, by a rename, so a reader never sees a
// half-written file.
func Write(path string, pid int) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".lancelot-pid-*")
	if err != nil {
		return fmt.Errorf("pid file %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	_, err = fmt.Fprintf(tmp, "%d\n", pid)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("pid file %s: %w", path, err)
	}
	return nil
}
