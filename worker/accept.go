package worker

import (
	"errors"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// addListener registers a listener duplicate handed over by Listen, or gives
// it back when the engine is already stopping.
func (l *loop) addListener(lf *listenerFD) {
	if l.e.state.Load() >= engineStopped {
		unix.Close(lf.fd)
		l.e.releaseListener(lf.rec, nil)
		return
	}
	l.lns = append(l.lns, lf)
	if err := l.listen(lf); err != nil {
		l.dropListener(lf, err)
	}
}

// listen puts lf in the epoll set. EPOLLEXCLUSIVE wakes one loop, not all,
// for a new connection when several loops accept on the same socket.
func (l *loop) listen(lf *listenerFD) error {
	events := uint32(unix.EPOLLIN)
	if l.e.nloops > 1 {
		events |= unix.EPOLLEXCLUSIVE
	}
	return l.ctl(unix.EPOLL_CTL_ADD, lf.fd, events, tagListener)
}

// dropListener closes the loop's duplicate of a listener. It leaves the
// epoll set explicitly: other descriptors of the same socket (the
// supervisor's, ln's) keep it registered otherwise.
func (l *loop) dropListener(lf *listenerFD, err error) {
	for i, x := range l.lns {
		if x == lf {
			l.lns = append(l.lns[:i], l.lns[i+1:]...)
			break
		}
	}
	if !lf.paused {
		unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, lf.fd, nil)
	}
	unix.Close(lf.fd)
	l.e.releaseListener(lf.rec, err)
}

// accept takes the connections queued on lf, up to a batch.
func (l *loop) accept(lf *listenerFD) {
	for range acceptBatch {
		fd, err := accept4(lf.fd)
		if err == nil {
			lf.backoff = 0
			l.addConn(fd)
			continue
		}
		switch classifyAcceptError(err) {
		case acceptEmpty:
			return
		case acceptOutOfResources:
			l.pauseListener(lf, err)
			return
		case acceptTransient:
			l.e.opts.Logger.Debug("accept error", "err", err)
		default:
			l.e.opts.Logger.Error("accept failed", "err", err)
			l.dropListener(lf, err)
			return
		}
	}
}

// sweep accepts every connection already queued on lf, then closes it:
// the loop's copy may be the socket's last, and closing the last copy
// resets every client still queued. It leaves the epoll set first, so that
// only the close follows the last accept. Out of descriptors, it keeps lf
// and reports false: the loop sweeps again shortly (see retrySweeps),
// once connections it serves have closed.
func (l *loop) sweep(lf *listenerFD) bool {
	if !lf.paused {
		unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, lf.fd, nil)
		lf.paused = true
	}
	for {
		fd, err := accept4(lf.fd)
		if err == nil {
			l.addConn(fd)
			continue
		}
		switch classifyAcceptError(err) {
		case acceptEmpty:
			l.dropListener(lf, nil)
			return true
		case acceptOutOfResources:
			return false
		case acceptTransient: // a client gave up while queued
		default:
			l.e.opts.Logger.Error("accept failed while stopping", "err", err)
			l.dropListener(lf, nil)
			return true
		}
	}
}

// Sweeps out of descriptors are retried this often, for this long.
const (
	sweepRetryEvery = 5 * time.Millisecond
	sweepGiveUp     = time.Second
)

// sweepAll sweeps every listener as the engine stops, and only the
// retired ones (see letGo) while it runs, keeping those that ran out of
// descriptors for retrySweeps.
func (l *loop) sweepAll() {
	stopping := l.e.state.Load() >= engineStopped
	for _, lf := range slices.Clone(l.lns) {
		if !stopping && !lf.rec.sweep {
			continue
		}
		if !l.sweep(lf) && l.sweepUntil == 0 {
			l.sweepUntil = l.now + int64(sweepGiveUp)
		}
	}
	l.sweepAt = l.now + int64(sweepRetryEvery)
}

// retrySweeps sweeps again the listeners left by sweepAll; past
// sweepGiveUp it closes them, resetting what is still queued.
func (l *loop) retrySweeps() {
	if l.sweepUntil == 0 || l.now < l.sweepAt {
		return
	}
	if l.now >= l.sweepUntil {
		l.e.opts.Logger.Error("out of descriptors while stopping: closing listeners with clients still queued", "listeners", len(l.lns))
		stopping := l.e.state.Load() >= engineStopped
		for _, lf := range slices.Clone(l.lns) {
			if stopping || lf.rec.sweep {
				l.dropListener(lf, nil)
			}
		}
		l.sweepUntil = 0
		return
	}
	l.sweepAll()
	if !slices.ContainsFunc(l.lns, func(lf *listenerFD) bool { return lf.paused && (lf.rec.sweep || l.e.state.Load() >= engineStopped) }) {
		l.sweepUntil = 0
	}
}

// acceptError sorts the errors accept can return; the list is explicit
// because net.Error's Temporary is deprecated.
type acceptError int

const (
	acceptFatal acceptError = iota
	// acceptEmpty: nothing is queued.
	acceptEmpty
	// acceptOutOfResources: out of descriptors or memory, which retrying
	// at once cannot cure.
	acceptOutOfResources
	// acceptTransient: a client that gave up while queued, or an
	// interrupted call; the next accept may well succeed.
	acceptTransient
)

func classifyAcceptError(err error) acceptError {
	switch {
	case err == unix.EAGAIN:
		return acceptEmpty
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE),
		errors.Is(err, syscall.ENOBUFS), errors.Is(err, syscall.ENOMEM):
		return acceptOutOfResources
	case errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EINTR),
		errors.Is(err, syscall.EPROTO), errors.Is(err, syscall.EPERM):
		return acceptTransient
	}
	return acceptFatal
}

// pauseListener takes lf out of the epoll set for a backoff (see
// nextBackoff), so that a level-triggered listener with a queue it cannot
// accept from does not spin the loop.
func (l *loop) pauseListener(lf *listenerFD, err error) {
	lf.backoff = nextBackoff(lf.backoff)
	l.e.opts.Logger.Warn("accept error; retrying", "err", err, "in", lf.backoff)
	unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, lf.fd, nil)
	lf.paused = true
	lf.resumeAt = l.now + int64(lf.backoff)
	if l.resumeAt == 0 || lf.resumeAt < l.resumeAt {
		l.resumeAt = lf.resumeAt
	}
}

// resumeListeners puts the paused listeners whose backoff is over back in
// the epoll set.
func (l *loop) resumeListeners() {
	l.resumeAt = 0
	for _, lf := range l.lns {
		if !lf.paused {
			continue
		}
		if lf.resumeAt > l.now {
			if l.resumeAt == 0 || lf.resumeAt < l.resumeAt {
				l.resumeAt = lf.resumeAt
			}
			continue
		}
		lf.paused = false
		if err := l.listen(lf); err != nil {
			l.dropListener(lf, err)
			l.resumeListeners() // l.lns changed under the range
			return
		}
	}
}
