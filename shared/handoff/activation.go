package handoff

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// inferActivated tells, for a release 0.3.0 predecessor (which does not
// say), whether the inherited sockets are systemd's. The kernel names the
// processes that hold the same sockets: the predecessor and its workers.
// A supervisor started by socket activation has LISTEN_FDS (with
// LISTEN_PID its own pid) in its environment, and one that took over from
// release 0.4.0 has LANCELOT_UPGRADE_ACTIVATED naming some socket: the
// environment a process was started with stays readable in
// /proc/PID/environ for as long as it runs, whatever it unset since. If any
// holder shows either, every inherited socket is the socket unit's: a
// 0.3.0 supervisor adds sockets only to the addresses it was given.
func inferActivated(sockets []*os.File) ([]bool, string) {
	inodes := map[string]bool{}
	for _, f := range sockets {
		var st unix.Stat_t
		if fd, err := rawFD(f); err == nil && unix.Fstat(fd, &st) == nil {
			inodes[fmt.Sprintf("socket:[%d]", st.Ino)] = true
		}
	}
	set := make([]bool, len(sockets))
	for _, pid := range holders(inodes) {
		if why := activatedEnviron(pid); why != "" {
			for i := range set {
				set[i] = true
			}
			return set, fmt.Sprintf("the old supervisor (release 0.3.0, pid %d) was %s", pid, why)
		}
	}
	return set, "the old supervisor (release 0.3.0) and its processes show no socket activation"
}

// holders returns the other processes that hold any of inodes
// ("socket:[N]"), as far as /proc lets this process see.
func holders(inodes map[string]bool) []int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var pids []int
	for _, dir := range dirs {
		pid, err := strconv.Atoi(filepath.Base(dir))
		if err != nil || pid == os.Getpid() {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join(dir, "fd"))
		for _, fd := range fds {
			if link, err := os.Readlink(filepath.Join(dir, "fd", fd.Name())); err == nil && inodes[link] {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// activatedEnviron says how pid's start environment shows socket
// activation, or "" when it does not.
func activatedEnviron(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return ""
	}
	env := map[string]string{}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if k, v, ok := bytes.Cut(kv, []byte("=")); ok {
			env[string(k)] = string(v)
		}
	}
	if n, _ := strconv.Atoi(env["LISTEN_FDS"]); n > 0 && env["LISTEN_PID"] == strconv.Itoa(pid) {
		return "started by socket activation (LISTEN_FDS=" + env["LISTEN_FDS"] + " in its environment)"
	}
	if env[envActivated] != "" {
		return "told by its own predecessor that sockets " + env[envActivated] + " are systemd's"
	}
	return ""
}
