// Package control is the channel between the supervisor and one worker: a
// SOCK_SEQPACKET socket pair, one JSON message per packet. The worker finds
// its end at fd ControlFD and its listening sockets from FirstListenerFD on;
// the supervisor keeps the other end. When the supervisor dies, even by
// SIGKILL, the kernel closes its end and the worker reads EOF: that is how a
// worker knows to stop without relying on Pdeathsig.
//
// Not a public API: this package serves the lancelot binary only.
package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// File descriptors and environment variables a worker is started with.
const (
	// ControlFD is the worker's end of the control channel.
	ControlFD = 3
	// FirstListenerFD is the first listening socket; the others follow.
	FirstListenerFD = 4
	// EnvListeners holds the number of listening sockets passed.
	EnvListeners = "LANCELOT_LISTENERS"
	// EnvConfig holds the worker's config.Config as JSON.
	EnvConfig = "LANCELOT_WORKER_CONFIG"
	// EnvSlot holds the worker's slot number, for its logs and metrics.
	EnvSlot = "LANCELOT_SLOT"
)

// maxPacket bounds one message; stats and commands are far smaller.
const maxPacket = 64 << 10

// Message types.
const (
	// TypeReady: worker -> supervisor, every listener is accepting.
	TypeReady = "ready"
	// TypeStats: worker -> supervisor, the worker's counters; sent when
	// asked with TypeStatsRequest and once more before a graceful exit.
	TypeStats = "stats"
	// TypeStatsRequest: supervisor -> worker, asks for a TypeStats reply
	// carrying the same Seq.
	TypeStatsRequest = "stats?"
)

// Message is one packet on the channel.
type Message struct {
	Type  string `json:"type"`
	Seq   uint64 `json:"seq,omitempty"`
	Stats *Stats `json:"stats,omitempty"`
}

// Stats are a worker's counters since it started.
type Stats struct {
	Answered uint64 `json:"answered"`
	Unknown  uint64 `json:"unknown"`
	Accepted uint64 `json:"accepted"`
	Active   int64  `json:"active"`
}

// Add returns the sum of s and o.
func (s Stats) Add(o Stats) Stats {
	return Stats{s.Answered + o.Answered, s.Unknown + o.Unknown, s.Accepted + o.Accepted, s.Active + o.Active}
}

// Conn is one end of the channel. Send is safe for concurrent use; Receive
// must be called from one goroutine.
type Conn struct {
	c   *net.UnixConn
	wmu sync.Mutex
	buf []byte
}

// Pair creates a channel. The supervisor keeps the Conn and passes the
// *os.File to the worker, then closes its copy of it.
func Pair() (*Conn, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("control socketpair: %w", err)
	}
	local := os.NewFile(uintptr(fds[0]), "control")
	remote := os.NewFile(uintptr(fds[1]), "control-worker")
	c, err := FromFile(local)
	if err != nil {
		remote.Close()
		return nil, nil, err
	}
	return c, remote, nil
}

// FromFile wraps an inherited channel end. It closes f: the Conn holds its
// own duplicate.
func FromFile(f *os.File) (*Conn, error) {
	defer f.Close()
	nc, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("control channel: %w", err)
	}
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		nc.Close()
		return nil, fmt.Errorf("control channel: %T is not a unix socket", nc)
	}
	return &Conn{c: uc, buf: make([]byte, maxPacket)}, nil
}

// Send writes one message.
func (c *Conn) Send(m Message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %s message: %w", m.Type, err)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.c.Write(b); err != nil {
		return fmt.Errorf("send %s message: %w", m.Type, err)
	}
	return nil
}

// Receive reads the next message. It returns io.EOF when the other end is
// gone.
func (c *Conn) Receive() (Message, error) {
	n, err := c.c.Read(c.buf)
	if n == 0 && (err == nil || errors.Is(err, io.EOF)) {
		return Message{}, io.EOF
	}
	if err != nil {
		return Message{}, fmt.Errorf("receive control message: %w", err)
	}
	var m Message
	if err := json.Unmarshal(c.buf[:n], &m); err != nil {
		return Message{}, fmt.Errorf("decode control message: %w", err)
	}
	return m, nil
}

// Close closes this end; the other end reads EOF.
func (c *Conn) Close() error {
	return c.c.Close()
}

// Interrupt makes a blocked or later Receive return an error, leaving Send
// usable: a worker still reports its final stats after it stops listening.
func (c *Conn) Interrupt() {
	c.c.SetReadDeadline(time.Unix(1, 0))
}
