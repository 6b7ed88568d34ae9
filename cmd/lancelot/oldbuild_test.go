package main

// Running the suite against an older build. LANCELOT_TEST_BIN=path (see
// TestMain) runs these tests against another binary, e.g. release 0.2.0,
// to show which problems a test catches. The few places where a test
// adapts to a build that lacks something (`lancelot status`, a serve flag,
// the worker's --slot) are all here: elsewhere the tests assume this
// build. A build without `lancelot status` falls back to /proc where a test
// can, so its clients' figures are still measured.

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/camelot/lancelot/cmd/internal/proc"
)

// hasStatusCommand reports whether the binary has `lancelot status`.
func hasStatusCommand() bool {
	out, _ := exec.Command(binPath, "--help").CombinedOutput()
	return regexp.MustCompile(`(?m)^\s+status\b`).Match(out)
}

// serveHasFlag reports whether the binary's serve takes flag.
func serveHasFlag(t *testing.T, flag string) bool {
	t.Helper()
	out, _ := exec.Command(binPath, "serve", "--help").CombinedOutput()
	return strings.Contains(string(out), flag)
}

// procSlot is a worker's slot: --slot N, or LANCELOT_SLOT=N in release
// 0.2.0; -1 if neither.
func procSlot(pid int) int {
	args := proc.Cmdline(pid)
	if i := slices.Index(args, "--slot"); i >= 0 && i+1 < len(args) {
		n, _ := strconv.Atoi(args[i+1])
		return n
	}
	env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	for _, kv := range strings.Split(string(env), "\x00") {
		if v, ok := strings.CutPrefix(kv, "LANCELOT_SLOT="); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return -1
}
