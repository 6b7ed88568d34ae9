//go:build !linux

package loadgen

import (
	"net"
	"os/exec"
	"syscall"
)

// On other systems the load runs without the Linux-only tuning: no
// IP_BIND_ADDRESS_NO_PORT, no limit raise, no parent-death signal.

func socketControl(bool, int) func(string, string, syscall.RawConn) error { return nil }

func raiseFileLimit() (int, error) { return 1024, nil }

func openFiles() int { return 64 }

func peekClosed(net.Conn) error { return nil }

func childAttr(*exec.Cmd) {}
