package handover

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Deadlines of the steps. A receiver answers a batch without waiting for
// anything, so an ack that takes longer means it is stuck or gone.
const (
	sendTimeout = time.Second
	ackTimeout  = 2 * time.Second
)

// Pair creates a channel: the supervisor passes send to the sending worker
// and receive to the receiving one, then closes both.
func Pair() (send, receive *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("handover socketpair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "handover-send"), os.NewFile(uintptr(fds[1]), "handover-receive"), nil
}

// unixConn wraps a channel end. It closes f: the conn holds its own
// duplicate, made non-blocking by the net package.
func unixConn(f *os.File) (*net.UnixConn, error) {
	defer f.Close()
	nc, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("handover channel: %w", err)
	}
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		nc.Close()
		return nil, fmt.Errorf("handover channel: %T is not a unix socket", nc)
	}
	return uc, nil
}

// ErrNotSent is Send's error for a batch that never left: the channel had
// broken before, or the packet could not be written. The connections are
// intact; the caller serves them on.
var ErrNotSent = errors.New("handover: batch not sent")

// Sender is the sending end. Send is safe for concurrent use: batches go
// one at a time, each waiting for its ack.
type Sender struct {
	mu     sync.Mutex
	c      *net.UnixConn
	seq    uint32
	broken error
	buf    []byte
	ack    []byte
}

// NewSender wraps the sending end f, and closes f.
func NewSender(f *os.File) (*Sender, error) {
	c, err := unixConn(f)
	if err != nil {
		return nil, err
	}
	return &Sender{c: c, ack: make([]byte, ackHeader+MaxBatch+1)}, nil
}

// Fits reports whether a batch of conns still has room for c.
func Fits(conns []Conn, c *Conn) bool {
	size := batchHeader + recordSize(c)
	for i := range conns {
		size += recordSize(&conns[i])
	}
	return len(conns) < MaxBatch && size <= maxPacket && len(c.Input) <= MaxInput
}

// Send passes conns (1 to MaxBatch, each Input at most MaxInput) and
// returns the receiver's verdict on each. It never closes a descriptor.
// An error means the channel is broken (the receiver is gone, timed out
// or answered nonsense). Unless it is ErrNotSent (never sent, or sent to a
// receiver that closed its end without reading it), the receiver may or
// may not hold the batch, so the caller must not serve those connections
// again. Every later Send fails at once, with ErrNotSent.
func (s *Sender) Send(conns []Conn) ([]Refusal, error) {
	if len(conns) == 0 || len(conns) > MaxBatch {
		return nil, fmt.Errorf("handover: batch of %d connections", len(conns))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotSent, s.broken)
	}
	v, err := s.exchange(conns)
	if err != nil {
		s.broken = err
		s.c.Close()
	}
	return v, err
}

func (s *Sender) exchange(conns []Conn) ([]Refusal, error) {
	s.seq++
	s.buf = encodeBatch(s.buf[:0], s.seq, conns)
	if len(s.buf) > maxPacket {
		return nil, fmt.Errorf("handover: batch of %d bytes", len(s.buf))
	}
	fds := make([]int, len(conns))
	for i := range conns {
		fds[i] = conns[i].FD
	}
	oob := unix.UnixRights(fds...)
	s.c.SetWriteDeadline(time.Now().Add(sendTimeout))
	n, oobn, err := s.c.WriteMsgUnix(s.buf, oob, nil)
	if err != nil {
		// A packet socket sends a packet whole or not at all.
		return nil, fmt.Errorf("%w: batch %d: %w", ErrNotSent, s.seq, err)
	}
	if n != len(s.buf) || oobn != len(oob) {
		return nil, fmt.Errorf("handover: batch %d sent short: %d/%d bytes, %d/%d control bytes", s.seq, n, len(s.buf), oobn, len(oob))
	}
	s.c.SetReadDeadline(time.Now().Add(ackTimeout))
	n, _, flags, _, err := s.c.ReadMsgUnix(s.ack, nil)
	switch {
	case errors.Is(err, unix.ECONNRESET):
		// Linux resets the peer of a unix socket closed with unread
		// packets in its queue. With one batch in flight, the unread
		// packet is this batch: its descriptors never reached the
		// receiver (it exited, or its end was still on its way to it), so
		// the sender's copies are the only ones and it serves on.
		return nil, fmt.Errorf("%w: batch %d unread by a receiver that closed: %w", ErrNotSent, s.seq, err)
	case err != nil:
		return nil, fmt.Errorf("handover: ack of batch %d: %w", s.seq, err)
	case n == 0:
		return nil, fmt.Errorf("handover: ack of batch %d: %w", s.seq, io.EOF)
	case flags&unix.MSG_TRUNC != 0:
		return nil, fmt.Errorf("handover: ack of batch %d truncated", s.seq)
	}
	return decodeAck(s.ack[:n], s.seq, len(conns))
}

// Close ends the channel: the receiver reads EOF.
func (s *Sender) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken == nil {
		s.broken = errors.New("handover: channel closed")
	}
	return s.c.Close()
}

// Taker decides on a batch: a verdict per connection. It owns the
// descriptors of the connections it takes; Serve closes the others.
type Taker func(conns []Conn) []Refusal

// Receiver is the receiving end.
type Receiver struct {
	c   *net.UnixConn
	buf []byte
	oob []byte
}

// NewReceiver wraps the receiving end f, and closes f.
func NewReceiver(f *os.File) (*Receiver, error) {
	c, err := unixConn(f)
	if err != nil {
		return nil, err
	}
	return &Receiver{
		c:   c,
		buf: make([]byte, maxPacket+1),
		oob: make([]byte, unix.CmsgSpace(4*(MaxBatch+1))),
	}, nil
}

// Serve answers batches with take's verdicts until the sender closes its
// end (nil), idle passes without a batch, or the channel fails. It
// closes the channel when it returns.
func (r *Receiver) Serve(take Taker, idle time.Duration) error {
	defer r.c.Close()
	for {
		r.c.SetReadDeadline(time.Now().Add(idle))
		n, oobn, flags, _, err := r.c.ReadMsgUnix(r.buf, r.oob)
		fds, ferr := receivedFDs(r.oob[:oobn])
		if n == 0 && len(fds) == 0 && (err == nil || errors.Is(err, io.EOF)) {
			return nil
		}
		if err != nil {
			closeAll(fds)
			return fmt.Errorf("handover: receive batch: %w", err)
		}
		seq, verdicts, whole := r.decide(r.buf[:n], flags, fds, ferr, take)
		ack := encodeAck(nil, seq, whole, verdicts)
		r.c.SetWriteDeadline(time.Now().Add(sendTimeout))
		if _, _, err := r.c.WriteMsgUnix(ack, nil, nil); err != nil {
			return fmt.Errorf("handover: ack batch %d: %w", seq, err)
		}
	}
}

// decide checks a packet and asks take about it; whatever is not taken is
// closed here.
func (r *Receiver) decide(p []byte, flags int, fds []int, ferr error, take Taker) (uint32, []Refusal, Refusal) {
	seq, conns, err := DecodeBatch(p)
	switch {
	case flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0, ferr != nil, err != nil, len(conns) != len(fds):
		closeAll(fds)
		return seq, nil, RefusedBatch
	}
	verdicts := make([]Refusal, len(conns))
	var offer []Conn
	var index []int
	for i := range conns {
		conns[i].FD = fds[i]
		if !isStream(fds[i]) {
			verdicts[i] = RefusedState
			continue
		}
		offer = append(offer, conns[i])
		index = append(index, i)
	}
	if len(offer) > 0 {
		got := take(offer)
		for j, i := range index {
			v := RefusedState
			if j < len(got) {
				v = got[j]
			}
			verdicts[i] = v
		}
	}
	for i, v := range verdicts {
		if v != Taken {
			unix.Close(fds[i])
		}
	}
	return seq, verdicts, Taken
}

// isStream reports whether fd is a connected stream socket: anything else
// a confused sender passed is refused.
func isStream(fd int) bool {
	t, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	return err == nil && t == unix.SOCK_STREAM
}

// receivedFDs returns every descriptor the control messages carry.
func receivedFDs(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	cmsgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("handover: parse control message: %w", err)
	}
	var fds []int
	var bad error
	for _, cm := range cmsgs {
		got, err := unix.ParseUnixRights(&cm)
		if err != nil {
			bad = err
			continue
		}
		fds = append(fds, got...)
	}
	return fds, bad
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
