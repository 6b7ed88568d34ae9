package handover

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestBatchRoundTrip(t *testing.T) {
	in := []Conn{
		{FD: 7, Phase: 0, Since: 3 * time.Second, Input: []byte("What is your")},
		{FD: 8, Phase: 1, Fresh: true, Client: netip.MustParseAddrPort("192.0.2.7:4242")},
		{FD: 9, Phase: 2, Client: netip.MustParseAddrPort("[2001:db8::1]:80"), Since: time.Millisecond},
	}
	seq, out, err := DecodeBatch(encodeBatch(nil, 42, in))
	if err != nil || seq != 42 {
		t.Fatalf("decode: seq %d, err %v", seq, err)
	}
	for i := range in {
		in[i].FD = -1
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", out, in)
	}
}

func TestAckRefusesWhole(t *testing.T) {
	v, err := decodeAck(encodeAck(nil, 3, RefusedBatch, nil), 3, 2)
	if err != nil || !slices.Equal(v, []Refusal{RefusedBatch, RefusedBatch}) {
		t.Fatalf("whole refusal: %v %v", v, err)
	}
	if _, err := decodeAck(encodeAck(nil, 3, Taken, []Refusal{Taken}), 4, 1); err == nil {
		t.Fatal("an ack for another batch was accepted")
	}
	if _, err := decodeAck(encodeAck(nil, 3, Taken, []Refusal{Taken}), 3, 2); err == nil {
		t.Fatal("an ack with too few verdicts was accepted")
	}
}

// FuzzDecodeBatch feeds arbitrary packets to the receiver's decoder: it
// never panics, and what it accepts stays within the caps and encodes
// back to the same bytes.
func FuzzDecodeBatch(f *testing.F) {
	f.Add(encodeBatch(nil, 1, []Conn{{Input: []byte("What is")}}))
	f.Add(encodeBatch(nil, 9, []Conn{{Fresh: true, Client: netip.MustParseAddrPort("10.0.0.1:9")}, {Phase: 2}}))
	f.Add([]byte{batchMagic, wireVersion, 0, 0, 0, 1, 1})
	f.Fuzz(func(t *testing.T, p []byte) {
		seq, conns, err := DecodeBatch(p)
		if err != nil {
			return
		}
		if len(conns) == 0 || len(conns) > MaxBatch {
			t.Fatalf("%d connections accepted", len(conns))
		}
		for _, c := range conns {
			if len(c.Input) > MaxInput || c.Phase > maxPhase || c.FD != -1 {
				t.Fatalf("out of range: %+v", c)
			}
		}
		if again := encodeBatch(nil, seq, conns); !bytes.Equal(again, p) {
			// Only the unused bytes of an IPv4 or absent address may differ.
			if _, back, err := DecodeBatch(again); err != nil || !reflect.DeepEqual(back, conns) {
				t.Fatalf("re-encoding changed the batch: %v", err)
			}
		}
	})
}

// tcpPair returns the two ends of a loopback TCP connection as raw
// non-blocking descriptors, closed at the end of the test.
func tcpPair(t *testing.T) (server int, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := sc.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var derr error
	rc.Control(func(fd uintptr) {
		server, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	})
	sc.Close()
	if derr != nil {
		t.Fatal(derr)
	}
	t.Cleanup(func() { unix.Close(server) })
	return server, client
}

func openFDs(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // the directory being read, closed by now
		}
		names = append(names, e.Name()+"->"+target)
	}
	return names
}

func channel(t *testing.T) (*Sender, *Receiver) {
	t.Helper()
	sf, rf, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSender(sf)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReceiver(rf)
	if err != nil {
		t.Fatal(err)
	}
	return s, r
}

// A refused batch leaves the sender's connections exactly as they were:
// still non-blocking, and no descriptor left behind or lost.
func TestRefusedBatchLeavesNothing(t *testing.T) {
	fd, client := tcpPair(t)
	s, r := channel(t)
	before := openFDs(t)
	done := make(chan error, 1)
	go func() {
		done <- r.Serve(func(conns []Conn) []Refusal {
			return []Refusal{RefusedMaxConnections}
		}, 5*time.Second)
	}()
	v, err := s.Send([]Conn{{FD: fd, Input: []byte("What is")}})
	if err != nil || !slices.Equal(v, []Refusal{RefusedMaxConnections}) {
		t.Fatalf("send: %v %v", v, err)
	}
	s.Close()
	if err := <-done; err != nil {
		t.Fatalf("receiver: %v", err)
	}
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil || flags&unix.O_NONBLOCK == 0 {
		t.Fatalf("O_NONBLOCK lost after a refused batch: flags %#x, %v", flags, err)
	}
	after := openFDs(t)
	// The channel's two ends are closed now; nothing else may differ.
	for _, name := range after {
		if !slices.Contains(before, name) {
			t.Errorf("descriptor left open: %s", name)
		}
	}
	requireSenderServes(t, fd, client, "after refusal")
}

// requireSenderServes checks that the sender's descriptor fd still carries
// bytes to client: the connection stayed the sender's.
func requireSenderServes(t *testing.T, fd int, client net.Conn, when string) {
	t.Helper()
	if _, err := unix.Write(fd, []byte("ok")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(buf); err != nil || string(buf) != "ok" {
		t.Fatalf("connection %s: %q %v", when, buf, err)
	}
}

// A taken connection reaches the receiver with its state, and works there.
func TestTakenConnection(t *testing.T) {
	fd, client := tcpPair(t)
	s, r := channel(t)
	got := make(chan Conn, 1)
	served := make(chan error, 1)
	go func() {
		served <- r.Serve(func(conns []Conn) []Refusal {
			c := conns[0]
			c.Input = slices.Clone(c.Input)
			got <- c
			return []Refusal{Taken}
		}, 5*time.Second)
	}()
	defer func() {
		s.Close()
		if err := <-served; err != nil {
			t.Errorf("receiver: %v", err)
		}
	}()
	v, err := s.Send([]Conn{{FD: fd, Input: []byte("What is"), Since: time.Second}})
	if err != nil || v[0] != Taken {
		t.Fatalf("send: %v %v", v, err)
	}
	c := <-got
	defer unix.Close(c.FD)
	if string(c.Input) != "What is" || c.Since != time.Second {
		t.Fatalf("state: %+v", c)
	}
	if _, err := unix.Write(c.FD, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(buf); err != nil || string(buf) != "hi" {
		t.Fatalf("connection after handover: %q %v", buf, err)
	}
}

// rawPacket sends p with fds on the sending end, bypassing Sender.
func rawPacket(t *testing.T, f *os.File, p []byte, fds []int) {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	rc.Control(func(sfd uintptr) {
		var oob []byte
		if len(fds) > 0 {
			oob = unix.UnixRights(fds...)
		}
		serr = unix.Sendmsg(int(sfd), p, oob, nil, 0)
	})
	if serr != nil {
		t.Fatal(serr)
	}
}

// A batch whose control message was truncated, or whose descriptors do
// not match its records, is refused whole, every received descriptor
// closed, and the channel goes on.
func TestUntrustedBatchRefused(t *testing.T) {
	sf, rf, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReceiver(rf)
	if err != nil {
		t.Fatal(err)
	}
	r.oob = make([]byte, unix.CmsgSpace(4*2)) // room for two: three are truncated
	taken := 0
	served := make(chan error, 1)
	go func() {
		served <- r.Serve(func(conns []Conn) []Refusal { taken++; return make([]Refusal, len(conns)) }, 5*time.Second)
	}()
	defer func() {
		sf.Close()
		<-served
	}()
	fd, _ := tcpPair(t)
	before := openFDs(t)
	cases := []struct {
		name  string
		conns int
		fds   int
	}{
		{"control message truncated", 3, 3},
		{"fewer descriptors than records", 2, 1},
		{"more descriptors than records", 1, 2},
	}
	ack := make([]byte, 64)
	for i, c := range cases {
		fds := make([]int, c.fds)
		for j := range fds {
			fds[j] = fd
		}
		rawPacket(t, sf, encodeBatch(nil, uint32(i+1), make([]Conn, c.conns)), fds)
		sf.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := sf.Read(ack)
		if err != nil {
			t.Fatalf("%s: no ack: %v", c.name, err)
		}
		if v, err := decodeAck(ack[:n], uint32(i+1), c.conns); err != nil || v[0] != RefusedBatch {
			t.Errorf("%s: verdicts %v, %v; want the batch refused", c.name, v, err)
		}
	}
	// An oversized packet is truncated by the receiver's read: refused too.
	rawPacket(t, sf, append(encodeBatch(nil, 9, make([]Conn, 1)), make([]byte, maxPacket)...), []int{fd})
	n, err := sf.Read(ack)
	if err != nil {
		t.Fatalf("truncated packet: no ack: %v", err)
	}
	if v, err := decodeAck(ack[:n], 9, 1); err != nil || v[0] != RefusedBatch {
		t.Errorf("truncated packet: verdicts %v, %v", v, err)
	}
	if taken != 0 {
		t.Errorf("the taker saw %d untrusted batches", taken)
	}
	if after := openFDs(t); !slices.Equal(before, after) {
		t.Errorf("descriptors changed:\nbefore %v\nafter  %v", before, after)
	}
}

// A receiver that closes its end with the batch unread never held the
// connections: Send says ErrNotSent, so the sender serves on, and the
// connection still works from its side.
func TestUnreadBatchNotSent(t *testing.T) {
	fd, client := tcpPair(t)
	sf, rf, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSender(sf)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The receiver closes its end once the batch is queued on it, unread.
	go func() {
		defer rf.Close()
		pfd := []unix.PollFd{{Fd: int32(rf.Fd()), Events: unix.POLLIN}}
		unix.Poll(pfd, 5000)
	}()
	if _, err := s.Send([]Conn{{FD: fd}}); !errors.Is(err, ErrNotSent) {
		t.Fatalf("send to a receiver that closed unread: %v, want ErrNotSent", err)
	}
	requireSenderServes(t, fd, client, "after the receiver left")
}
