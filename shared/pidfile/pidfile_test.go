package pidfile_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/camelot/lancelot/shared/pidfile"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		// Success cases
		{"42\n", 42},
		{"42", 42},
		// Failure cases
		{"", 0},
		{"0\n", 0},
		{"-3\n", 0},
		{" 42\n", 0},
		{"42\n\n", 0},
		{"42 43\n", 0},
		{"sleep\n", 0},
	} {
		got, err := pidfile.Parse(tc.in)
		if got != tc.want || (tc.want == 0) != errors.Is(err, pidfile.ErrNoPID) {
			t.Errorf("Parse(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestWriteRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lancelot.pid")
	if err := pidfile.Write(path, 1234); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "1234\n" {
		t.Errorf("file holds %q, want %q", b, "1234\n")
	}
	if !pidfile.Names(path, 1234) || pidfile.Names(path, 123) {
		t.Errorf("Names: want true for 1234 only")
	}
	if _, err := pidfile.Read(filepath.Join(t.TempDir(), "none")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Read of a missing file: %v, want ErrNotExist", err)
	}
}
