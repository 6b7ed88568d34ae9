package worker

import (
	"errors"
	"syscall"
)

// isTransientAcceptError reports accept errors that go away by themselves:
// running out of descriptors or memory, or a client that gave up while
// queued. net.Error's Temporary is deprecated, so the list is explicit.
func isTransientAcceptError(err error) bool {
	for _, e := range []error{
		syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EINTR, syscall.EAGAIN,
		syscall.EPROTO, syscall.EPERM,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
