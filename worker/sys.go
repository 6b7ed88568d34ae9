package worker

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The loop's per-question system calls, on non-blocking descriptors: they
// never block, so they skip the scheduler's bookkeeping for blocking calls
// (RawSyscall), and they return the bare Errno, which costs no allocation.

func sysRead(fd int, p []byte) (int, error) {
	n, _, e := syscall.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// sysSend writes p with MSG_NOSIGNAL: a peer gone away is an EPIPE error,
// never a SIGPIPE.
func sysSend(fd int, p []byte) (int, error) {
	n, _, e := syscall.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)), unix.MSG_NOSIGNAL, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// accept4 accepts a connection without asking for its address, which
// unix.Accept4 would allocate.
func accept4(fd int) (int, error) {
	nfd, _, e := syscall.RawSyscall6(unix.SYS_ACCEPT4, uintptr(fd), 0, 0, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(nfd), nil
}
