// Package control is the channel between the supervisor and one worker: a
// SOCK_SEQPACKET socket pair, one JSON message per packet, with a listening
// socket attached (SCM_RIGHTS) when the supervisor lends one. When the
// supervisor dies, even by SIGKILL, the kernel closes its end and the
// worker reads EOF: that is how a worker knows to stop without relying on
// Pdeathsig.
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

// maxPacket bounds one message; stats and commands are far smaller.
const maxPacket = 64 << 10

// Message types. Each names its direction.
const (
	// TypeReady: worker -> supervisor, every listener given at start is
	// accepting; Version is the worker's release.
	TypeReady = "ready"
	// TypeStats: worker -> supervisor, the worker's counters; sent when
	// asked with TypeStatsRequest and once more before a graceful exit.
	TypeStats = "stats"
	// TypeStatsRequest: supervisor -> worker, asks for a TypeStats reply
	// carrying the same Seq.
	TypeStatsRequest = "stats?"
	// TypeAliveRequest: supervisor -> worker, the heartbeat. The worker
	// answers TypeAlive with the same Seq once every one of its serving
	// loops has seen the request, so the answer vouches for the loops, not
	// for the goroutine that reads this channel.
	TypeAliveRequest = "alive?"
	// TypeAlive: worker -> supervisor, the answer to TypeAliveRequest.
	TypeAlive = "alive"
	// TypeLend: supervisor -> worker, accept on the attached listening
	// socket too, under the id in Socket.
	TypeLend = "lend"
	// TypeReclaim: supervisor -> worker, stop accepting on socket Socket.
	// The worker drops its copy without accepting what is queued: the
	// supervisor keeps the socket open and another worker serves it.
	TypeReclaim = "reclaim"
	// TypeRetire: supervisor -> worker, socket Socket's address is being
	// removed: accept what is queued on it, serve those clients, and drop
	// the worker's copy, the socket's last.
	TypeRetire = "retire"
	// TypeHandOver: supervisor -> worker, the attached descriptor is one
	// end of a handover channel (package handover). Role RoleSend: hand
	// open connections into it, for Reason; all of them at a question
	// boundary while the worker stops (reload, upgrade, scale_down, with
	// TERM following), or for rebalance 1/Share of its idle ones while it
	// goes on serving. Role RoleReceive: serve the connections that come
	// out of it, within the worker's limits.
	TypeHandOver = "handover"
)

// Roles of a worker in a handover.
const (
	RoleSend    = "send"
	RoleReceive = "receive"
)

// Reasons for a handover; each is a value of the
// lancelot_connections_handed_over_total{reason} label.
const (
	ReasonReload    = "reload"
	ReasonUpgrade   = "upgrade"
	ReasonScaleDown = "scale_down"
	ReasonRebalance = "rebalance"
)

// Message is one packet on the channel.
type Message struct {
	Type   string `json:"type"`
	Seq    uint64 `json:"seq,omitempty"`
	Socket int    `json:"socket,omitempty"`
	Stats  *Stats `json:"stats,omitempty"`
	// Version is the sender's release, in TypeReady.
	Version string `json:"version,omitempty"`
	// Role, Reason and Share describe a TypeHandOver: Share is, for a
	// rebalance, the number of workers the idle connections are spread
	// over, so the sender hands over 1/Share of them.
	Role   string `json:"role,omitempty"`
	Reason string `json:"reason,omitempty"`
	Share  int    `json:"share,omitempty"`
	// File is the descriptor a TypeLend or TypeHandOver message carries; it travels as
	// SCM_RIGHTS, not in the JSON. Receive hands the receiver its own
	// close-on-exec copy, which the receiver must close.
	File *os.File `json:"-"`
}

// Conn is one end of the channel. Send is safe for concurrent use; Receive
// must be called from one goroutine.
type Conn struct {
	c   *net.UnixConn
	wmu sync.Mutex
	buf []byte
	oob []byte
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
	return &Conn{c: uc, buf: make([]byte, maxPacket), oob: make([]byte, unix.CmsgSpace(4))}, nil
}

// Send writes one message, with m.File attached when it is set.
func (c *Conn) Send(m Message) error {
	return c.SendWithin(m, 0)
}

// SendWithin is Send that gives up after d (0: never): the channel's
// buffer holds hundreds of messages, so one that stays full means the
// other end stopped reading. The bound applies to this message only.
func (c *Conn) SendWithin(m Message, d time.Duration) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %s message: %w", m.Type, err)
	}
	var oob []byte
	if m.File != nil {
		// Through SyscallConn, not Fd: Fd makes a socket blocking, for
		// every process that shares it.
		rc, err := m.File.SyscallConn()
		if err != nil {
			return fmt.Errorf("send %s message: %w", m.Type, err)
		}
		rc.Control(func(fd uintptr) { oob = unix.UnixRights(int(fd)) })
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var deadline time.Time
	if d > 0 {
		deadline = time.Now().Add(d)
	}
	c.c.SetWriteDeadline(deadline)
	if _, _, err := c.c.WriteMsgUnix(b, oob, nil); err != nil {
		return fmt.Errorf("send %s message: %w", m.Type, err)
	}
	return nil
}

// Receive reads the next message. It returns io.EOF when the other end is
// gone. A descriptor that came with a message that should not carry one is
// closed here, so a confused peer cannot leak descriptors into us.
func (c *Conn) Receive() (Message, error) {
	// ReadMsgUnix sets MSG_CMSG_CLOEXEC: a received socket never leaks
	// into a process this one starts.
	n, oobn, _, _, err := c.c.ReadMsgUnix(c.buf, c.oob)
	if n == 0 && oobn == 0 && (err == nil || errors.Is(err, io.EOF)) {
		return Message{}, io.EOF
	}
	if err != nil {
		return Message{}, fmt.Errorf("receive control message: %w", err)
	}
	file, ferr := attachedFile(c.oob[:oobn])
	var m Message
	if err := json.Unmarshal(c.buf[:n], &m); err != nil {
		closeFile(file)
		return Message{}, fmt.Errorf("decode control message: %w", err)
	}
	if !carriesFile(m.Type) {
		closeFile(file)
		return m, nil
	}
	if file == nil {
		if ferr == nil {
			ferr = errors.New("no descriptor attached")
		}
		return Message{}, fmt.Errorf("receive %s message (socket %d): %w", m.Type, m.Socket, ferr)
	}
	m.File = file
	return m, nil
}

// carriesFile reports whether messages of type t come with a descriptor.
func carriesFile(t string) bool { return t == TypeLend || t == TypeHandOver }

// attachedFile returns the one descriptor an SCM_RIGHTS message carries.
func attachedFile(oob []byte) (*os.File, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	cmsgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("parse control message: %w", err)
	}
	var file *os.File
	for _, cm := range cmsgs {
		fds, err := unix.ParseUnixRights(&cm)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if file == nil {
				file = os.NewFile(uintptr(fd), "lent-listener")
			} else {
				unix.Close(fd)
			}
		}
	}
	return file, nil
}

func closeFile(f *os.File) {
	if f != nil {
		f.Close()
	}
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
