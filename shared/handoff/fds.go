package handoff

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// DupCloexec duplicates fd, close-on-exec from the start, without touching
// its open file description. The one place descriptors are duplicated: an
// (*os.File).Fd() or File() on a socket would clear O_NONBLOCK on the
// description all its copies share (a worker's accept loop would then
// block, and ignore Close: golang/go #24942).
func DupCloexec(fd uintptr) (int, error) {
	dup, err := unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("dup fd %d: %w", fd, err)
	}
	return dup, nil
}

// DupFile is DupCloexec of f, reached through its SyscallConn so that f's
// mode is left alone.
func DupFile(f *os.File) (int, error) {
	sc, err := f.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("dup %s: %w", f.Name(), err)
	}
	fd, dupErr := -1, error(nil)
	if err := sc.Control(func(raw uintptr) { fd, dupErr = DupCloexec(raw) }); err != nil {
		return -1, fmt.Errorf("dup %s: %w", f.Name(), err)
	}
	return fd, dupErr
}

// fdQueue holds descriptors received on the channel until a "conns" line
// claims them.
type fdQueue struct {
	files []*os.File
}

func (q *fdQueue) len() int { return len(q.files) }

func (q *fdQueue) take(k int) []*os.File {
	out := q.files[:k:k]
	q.files = q.files[k:]
	return out
}

// close closes what no line claimed.
func (q *fdQueue) close() {
	for _, f := range q.files {
		f.Close()
	}
	q.files = nil
}

// maxFDsPerRead bounds the descriptors one read takes; a sender passes at
// most this many per message (see sendConns).
const maxFDsPerRead = 64

// fdReader reads the channel with recvmsg, queueing the descriptors that
// come with the bytes: a plain read would let the kernel close them.
type fdReader struct {
	f   *os.File
	fds *fdQueue
}

func (r *fdReader) Read(p []byte) (int, error) {
	sc, err := r.f.SyscallConn()
	if err != nil {
		return 0, err
	}
	oob := make([]byte, unix.CmsgSpace(4*maxFDsPerRead))
	var n, oobn, flags int
	var rerr error
	err = sc.Read(func(fd uintptr) bool {
		n, oobn, flags, _, rerr = unix.Recvmsg(int(fd), p, oob, unix.MSG_CMSG_CLOEXEC)
		return !errors.Is(rerr, unix.EAGAIN)
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return 0, err
	}
	if ferr := r.queue(oob[:oobn], flags); ferr != nil {
		return 0, ferr
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// queue keeps the descriptors of one message; a truncated one is refused
// whole, its descriptors closed.
func (r *fdReader) queue(oob []byte, flags int) error {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return fmt.Errorf("handoff channel: control message: %w", err)
	}
	var got []int
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err == nil {
			got = append(got, fds...)
		}
	}
	if flags&unix.MSG_CTRUNC != 0 {
		for _, fd := range got {
			unix.Close(fd)
		}
		return errors.New("handoff channel: descriptors cut short (MSG_CTRUNC)")
	}
	for _, fd := range got {
		r.fds.files = append(r.fds.files, os.NewFile(uintptr(fd), "connection receiver"))
	}
	return nil
}

// NewChannelReader reads reports from the predecessor's end of the
// channel, descriptors included. Close releases descriptors no report
// claimed.
func NewChannelReader(ch *os.File) *ReportReader {
	q := &fdQueue{}
	r := NewReportReader(&fdReader{f: ch, fds: q})
	r.fds = q
	return r
}

// Close closes the descriptors received but not claimed by a report.
func (r *ReportReader) Close() {
	if r.fds != nil {
		r.fds.close()
	}
}

// sendConns writes "conns K", then the K descriptors in batches of at
// most maxFDsPerRead, each riding one zero byte: the reader reads one
// batch per recvmsg, and claims the zero bytes with the line.
func sendConns(ch *os.File, files []*os.File) error {
	if len(files) > maxConns {
		return fmt.Errorf("send conns: %d descriptors, at most %d", len(files), maxConns)
	}
	if err := writeLine(ch, lineConns, strconv.Itoa(len(files))); err != nil {
		return fmt.Errorf("send conns: %w", err)
	}
	sc, err := ch.SyscallConn()
	if err != nil {
		return err
	}
	for start := 0; start < len(files); start += maxFDsPerRead {
		var fds []int
		for _, f := range files[start:min(start+maxFDsPerRead, len(files))] {
			fd, err := rawFD(f)
			if err != nil {
				return fmt.Errorf("send conns: %w", err)
			}
			fds = append(fds, fd)
		}
		if err := sendRights(sc, fds); err != nil {
			return fmt.Errorf("send conns: %w", err)
		}
	}
	return nil
}

// batches is how many zero bytes carry k descriptors.
func batches(k int) int {
	return (k + maxFDsPerRead - 1) / maxFDsPerRead
}

// rawFD is f's descriptor, read without (*os.File).Fd's side effect.
func rawFD(f *os.File) (int, error) {
	sc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	err = sc.Control(func(raw uintptr) { fd = int(raw) })
	return fd, err
}

// sendRights sends one zero byte with fds, checking it went whole.
func sendRights(sc syscall.RawConn, fds []int) error {
	oob := unix.UnixRights(fds...)
	var n, oobn int
	var serr error
	err := sc.Write(func(fd uintptr) bool {
		n, serr = unix.SendmsgN(int(fd), []byte{0}, oob, nil, 0)
		oobn = len(oob)
		return !errors.Is(serr, unix.EAGAIN)
	})
	if err == nil {
		err = serr
	}
	if err == nil && (n != 1 || oobn != len(oob)) {
		err = fmt.Errorf("sent %d of 1 bytes", n)
	}
	return err
}
