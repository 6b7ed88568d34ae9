package supervisor

import (
	"errors"

	"golang.org/x/sys/unix"
)

// reserveSize is how many descriptors the reserve holds: a worker start
// needs a control socket pair and one duplicate per socket passed.
const reserveSize = 16

// fdReserve holds descriptors the supervisor lets go of only to start a
// worker when the process has run out (EMFILE). The metrics, agent and
// admin ports are capped, but whatever else eats descriptors, a crashed
// worker can still be replaced.
type fdReserve struct {
	fds []int
}

// fill takes descriptors back up to reserveSize, as many as it can.
func (r *fdReserve) fill() {
	for len(r.fds) < reserveSize {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return
		}
		r.fds = append(r.fds, fd)
	}
}

// release gives the descriptors back to the process; it reports whether
// there were any.
func (r *fdReserve) release() bool {
	for _, fd := range r.fds {
		unix.Close(fd)
	}
	had := len(r.fds) > 0
	r.fds = r.fds[:0]
	return had
}

// withReserve runs start, and once more with the reserve released when it
// failed for want of descriptors.
func (r *fdReserve) withReserve(start func() (workerProc, error), warn func()) (workerProc, error) {
	r.fill()
	p, err := start()
	if errors.Is(err, unix.EMFILE) && r.release() {
		warn()
		p, err = start()
	}
	return p, err
}
