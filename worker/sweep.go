package worker

import (
	"log/slog"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// sweepQueue accepts, without blocking, every connection already waiting in
// ln's accept queue. A worker that stops accepting may hold the last copy of
// its socket (on TERM the supervisor closes its own), and closing the last
// copy resets every queued client: sweeping first serves them instead.
func sweepQueue(ln net.Listener, log *slog.Logger) []net.Conn {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	var fds []int
	rc.Control(func(fd uintptr) {
		for {
			nfd, _, err := unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
			if err != nil {
				return // EAGAIN: the queue is empty
			}
			fds = append(fds, nfd)
		}
	})
	conns := make([]net.Conn, 0, len(fds))
	for _, fd := range fds {
		f := os.NewFile(uintptr(fd), "swept")
		nc, err := net.FileConn(f)
		f.Close()
		if err != nil {
			log.Warn("serve a queued connection at stop", "err", err)
			continue
		}
		conns = append(conns, nc)
	}
	return conns
}
