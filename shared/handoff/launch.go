package handoff

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
)

// Launch is the launcher's whole job (the hidden `upgrade-launch`
// command): start binary with args as the successor, passing on the
// descriptors and the environment it was itself started with, report the
// successor's pid on the channel, and return at once so the process exits.
// The successor is then re-parented (to systemd, when it is PID 1) before
// it announces itself as the main process: that is why the launcher
// exists.
func Launch(binary string, args []string) error {
	IgnoreOperatorSignals()
	n, err := strconv.Atoi(os.Getenv(envFDs))
	if err != nil || n < 1 {
		return errors.New("upgrade-launch: not started by serve")
	}
	files := make([]*os.File, n+1) // the layout: the sockets, then the channel
	for i := range n {
		files[i] = os.NewFile(uintptr(socketFD(i)), "inherited")
	}
	channel := os.NewFile(uintptr(channelFD(n)), "handoff")
	files[n] = channel
	cmd := exec.Command(binary, args...)
	cmd.ExtraFiles = files
	cmd.Env = append(os.Environ(), envLauncher+"="+strconv.Itoa(os.Getpid()))
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := Start(cmd); err != nil {
		Refuse(channel, fmt.Sprintf("cannot start %s: %v", binary, err))
		return err
	}
	err = WritePID(channel, cmd.Process.Pid)
	cmd.Process.Release()
	return err
}
