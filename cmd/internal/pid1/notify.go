package pid1

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// barrierKey names the datagram the init sends itself (see the package
// doc); it is never passed on.
const barrierKey = "X_LANCELOT_INIT_BARRIER="

// maxDatagram bounds a notification; systemd's own limit is larger, but
// lancelot's are a few lines.
const maxDatagram = 4096

// message is one notification and the pid the kernel says sent it (0 when
// the sender is outside this PID namespace, or did not say).
type message struct {
	pid   int
	lines []string
}

// mainPID is the pid a message's MAINPID= line names, or 0.
func (m message) mainPID() int {
	for _, l := range m.lines {
		if v, ok := strings.CutPrefix(l, "MAINPID="); ok {
			if pid, err := strconv.Atoi(v); err == nil && pid > 1 {
				return pid
			}
		}
	}
	return 0
}

// barrier is the sequence number of a barrier message, or 0.
func (m message) barrier() int {
	for _, l := range m.lines {
		if v, ok := strings.CutPrefix(l, barrierKey); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

// upward is what is passed on to the init's own NOTIFY_SOCKET: every line
// but MAINPID= (PID 1 stays the main process seen from outside) and the
// barrier; "" when nothing is left.
func (m message) upward() string {
	var out []string
	for _, l := range m.lines {
		if l != "" && !strings.HasPrefix(l, "MAINPID=") && !strings.HasPrefix(l, barrierKey) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// notifySocket is the init's sd_notify socket.
type notifySocket struct {
	conn *net.UnixConn
	addr string // what NOTIFY_SOCKET says: "@" and an abstract name
}

// listenNotify opens an abstract datagram socket with a random name (no
// file: the container's root may not be writable), asking the kernel for
// each sender's credentials.
func listenNotify() (*notifySocket, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("notify socket name: %w", err)
	}
	addr := "@lancelot-init-" + hex.EncodeToString(b[:])
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "unixgram", addr)
	if err != nil {
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	return &notifySocket{conn: pc.(*net.UnixConn), addr: addr}, nil
}

// read hands every datagram to msgs until the socket is closed or done is.
func (s *notifySocket) read(msgs chan<- message, done <-chan struct{}) {
	buf := make([]byte, maxDatagram)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred))
	for {
		n, oobn, flags, _, err := s.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			return // closed
		}
		if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
			continue
		}
		m := message{pid: senderPID(oob[:oobn]), lines: strings.Split(string(buf[:n]), "\n")}
		select {
		case msgs <- m:
		case <-done:
			return
		}
	}
}

// senderPID is the pid in a datagram's credentials, 0 if it has none.
func senderPID(oob []byte) int {
	cmsgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	for i := range cmsgs {
		if cred, err := unix.ParseUnixCredentials(&cmsgs[i]); err == nil {
			return int(cred.Pid)
		}
	}
	return 0
}

// sendBarrier sends the barrier numbered seq to the socket itself.
func (s *notifySocket) sendBarrier(seq int) error {
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: s.addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("barrier: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(barrierKey + strconv.Itoa(seq))); err != nil {
		return fmt.Errorf("barrier: %w", err)
	}
	return nil
}

// Close closes the socket; read returns.
func (s *notifySocket) Close() error {
	return s.conn.Close()
}
