package config

import "syscall"

// ConnectionReserve is the descriptors a worker keeps beyond its
// connections: its listening sockets' copies, epoll and wake-up
// descriptors, the control channel, the log.
const ConnectionReserve = 64

// ConnectionLimit is the connections a worker admits: MaxConnections, or,
// when that is zero, the open-files limit less ConnectionReserve, so that
// accept never fails for want of a descriptor and the connection cap, not
// the kernel, decides who is turned away.
func (c Config) ConnectionLimit() int {
	if c.MaxConnections > 0 {
		return c.MaxConnections
	}
	return max(1, int(OpenFilesLimit())-ConnectionReserve)
}

// OpenFilesLimit is this process's open-files limit (RLIMIT_NOFILE, as Go
// raised it at start), which a service manager may have capped below what
// its unit asked for.
func OpenFilesLimit() uint64 {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) != nil {
		return 0
	}
	return rl.Cur
}
