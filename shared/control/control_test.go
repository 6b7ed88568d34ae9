package control_test

import (
	"errors"
	"io"
	"net"
	"os"
	"reflect"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/camelot/lancelot/shared/control"
	"github.com/camelot/lancelot/shared/lancelottest"
)

// pair returns both ends of a channel: the supervisor's Conn and the
// worker's, built from the *os.File as a worker does.
func pair(t *testing.T) (sup, wrk *control.Conn) {
	t.Helper()
	sup, f, err := control.Pair()
	if err != nil {
		t.Fatalf("Pair: %v", err)
	}
	wrk, err = control.FromFile(f)
	if err != nil {
		sup.Close()
		t.Fatalf("FromFile: %v", err)
	}
	t.Cleanup(func() { sup.Close(); wrk.Close() })
	return sup, wrk
}

// receive calls Receive with a bound, so a broken channel fails the test
// instead of hanging it.
func receive(t *testing.T, c *control.Conn) (control.Message, error) {
	t.Helper()
	type result struct {
		m   control.Message
		err error
	}
	ch := make(chan result, 1)
	go func() {
		m, err := c.Receive()
		ch <- result{m, err}
	}()
	select {
	case r := <-ch:
		return r.m, r.err
	case <-time.After(5 * time.Second):
		c.Interrupt()
		<-ch
		t.Fatal("Receive blocked for 5s")
		return control.Message{}, nil
	}
}

func TestSendReceiveRoundTrip(t *testing.T) {
	sup, wrk := pair(t)
	stats := control.Stats{Answered: 1 << 40, Unknown: 2, Accepted: 3, Active: -4,
		Closed: map[string]uint64{"unknown": 2}, ProxyErrors: map[string]uint64{"missing": 1}, LogDropped: 5}
	for _, tc := range []struct {
		from, to *control.Conn
		m        control.Message
	}{
		{wrk, sup, control.Message{Type: control.TypeReady}},
		{sup, wrk, control.Message{Type: control.TypeStatsRequest, Seq: 7}},
		{sup, wrk, control.Message{Type: control.TypeAliveRequest, Seq: 8}},
		{wrk, sup, control.Message{Type: control.TypeAlive, Seq: 8}},
		{sup, wrk, control.Message{Type: control.TypeReclaim, Socket: 3}},
		{wrk, sup, control.Message{Type: control.TypeStats, Seq: 7, Stats: &stats}},
	} {
		if err := tc.from.Send(tc.m); err != nil {
			t.Fatalf("Send(%+v): %v", tc.m, err)
		}
		got, err := receive(t, tc.to)
		if err != nil {
			t.Fatalf("Receive after Send(%+v): %v", tc.m, err)
		}
		if got.Type != tc.m.Type || got.Seq != tc.m.Seq || got.Socket != tc.m.Socket || !reflect.DeepEqual(got.Stats, tc.m.Stats) {
			t.Errorf("Receive() = %+v (stats %+v), want %+v (stats %+v)", got, got.Stats, tc.m, tc.m.Stats)
		}
	}
}

// TestMessageBoundaries checks messages keep their boundaries: several sent
// before one is read come out one by one, in order.
func TestMessageBoundaries(t *testing.T) {
	sup, wrk := pair(t)
	for seq := uint64(1); seq <= 5; seq++ {
		if err := sup.Send(control.Message{Type: control.TypeStatsRequest, Seq: seq}); err != nil {
			t.Fatal(err)
		}
	}
	for seq := uint64(1); seq <= 5; seq++ {
		m, err := receive(t, wrk)
		if err != nil || m.Type != control.TypeStatsRequest || m.Seq != seq {
			t.Fatalf("message %d: Receive() = %+v, %v", seq, m, err)
		}
	}
}

func TestReceiveEOFWhenOtherEndClosed(t *testing.T) {
	for _, closeSup := range []bool{true, false} {
		sup, wrk := pair(t)
		closer, reader := sup, wrk
		if !closeSup {
			closer, reader = wrk, sup
		}
		// A message sent before the close is still delivered, then EOF.
		if err := closer.Send(control.Message{Type: control.TypeReady}); err != nil {
			t.Fatal(err)
		}
		closer.Close()
		if m, err := receive(t, reader); err != nil || m.Type != control.TypeReady {
			t.Errorf("close supervisor end=%v: first Receive() = %+v, %v; want the ready message", closeSup, m, err)
		}
		if m, err := receive(t, reader); !errors.Is(err, io.EOF) {
			t.Errorf("close supervisor end=%v: Receive() after close = %+v, %v; want io.EOF", closeSup, m, err)
		}
	}
}

// TestReceiveEOFWhileBlocked checks a Receive already waiting wakes up with
// EOF when the other end goes away: that is how a worker learns its
// supervisor died.
func TestReceiveEOFWhileBlocked(t *testing.T) {
	sup, wrk := pair(t)
	errc := make(chan error, 1)
	go func() {
		_, err := wrk.Receive()
		errc <- err
	}()
	sup.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, io.EOF) {
			t.Errorf("blocked Receive() = %v, want io.EOF", err)
		}
	case <-time.After(5 * time.Second):
		wrk.Interrupt()
		<-errc
		t.Fatal("blocked Receive() did not return after the other end closed")
	}
}

// TestInterrupt checks Interrupt wakes a blocked Receive with an error other
// than EOF, and leaves Send working.
func TestInterrupt(t *testing.T) {
	sup, wrk := pair(t)
	errc := make(chan error, 1)
	go func() {
		_, err := wrk.Receive()
		errc <- err
	}()
	wrk.Interrupt()
	select {
	case err := <-errc:
		if err == nil || errors.Is(err, io.EOF) {
			t.Errorf("interrupted Receive() = %v, want a non-EOF error", err)
		}
	case <-time.After(5 * time.Second):
		sup.Close()
		<-errc
		t.Fatal("Interrupt did not wake Receive")
	}
	stats := control.Stats{Answered: 9}
	if err := wrk.Send(control.Message{Type: control.TypeStats, Stats: &stats}); err != nil {
		t.Fatalf("Send after Interrupt: %v", err)
	}
	if m, err := receive(t, sup); err != nil || m.Stats == nil || m.Stats.Answered != 9 {
		t.Errorf("Receive of stats sent after Interrupt = %+v, %v", m, err)
	}
}

func TestSendAfterOtherEndClosed(t *testing.T) {
	sup, wrk := pair(t)
	wrk.Close()
	if err := sup.Send(control.Message{Type: control.TypeStatsRequest, Seq: 1}); err == nil {
		t.Error("Send to a closed peer succeeded, want an error")
	}
}

func TestStatsAdd(t *testing.T) {
	a := control.Stats{Answered: 1, Unknown: 2, Accepted: 3, Active: 4}
	b := control.Stats{Answered: 10, Unknown: 20, Accepted: 30, Active: -1}
	if got, want := a.Add(b), (control.Stats{Answered: 11, Unknown: 22, Accepted: 33, Active: 3}); !reflect.DeepEqual(got, want) {
		t.Errorf("%+v.Add(%+v) = %+v, want %+v", a, b, got, want)
	}
	c := control.Stats{Closed: map[string]uint64{"unknown": 1, "shed": 2}, LogDropped: 1}
	d := control.Stats{Closed: map[string]uint64{"unknown": 3}, ProxyErrors: map[string]uint64{"missing": 4}, LogDropped: 2}
	want := control.Stats{Closed: map[string]uint64{"unknown": 4, "shed": 2}, ProxyErrors: map[string]uint64{"missing": 4}, LogDropped: 3}
	if got := c.Add(d); !reflect.DeepEqual(got, want) {
		t.Errorf("%+v.Add(%+v) = %+v, want %+v", c, d, got, want)
	}
	if c.Closed["unknown"] != 1 {
		t.Errorf("Add changed its receiver's map: %v", c.Closed)
	}
}

// TestLendPassesSocket checks a lend carries a working listening socket:
// the receiver gets its own close-on-exec descriptor of the same socket.
func TestLendPassesSocket(t *testing.T) {
	sup, wrk := pair(t)
	f, addr := lancelottest.ListenerFile(t)
	if err := sup.Send(control.Message{Type: control.TypeLend, Socket: 2, File: f}); err != nil {
		t.Fatalf("Send(lend): %v", err)
	}
	f.Close()
	m, err := receive(t, wrk)
	if err != nil || m.Type != control.TypeLend || m.Socket != 2 || m.File == nil {
		t.Fatalf("Receive() = %+v, %v; want a lend of socket 2 with a file", m, err)
	}
	defer m.File.Close()
	flags, err := unix.FcntlInt(m.File.Fd(), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("received descriptor flags = %#x, %v; want FD_CLOEXEC", flags, err)
	}
	got, err := net.FileListener(m.File)
	if err != nil {
		t.Fatalf("received descriptor is not a listener: %v", err)
	}
	defer got.Close()
	if got.Addr().String() != addr {
		t.Errorf("received listener on %s, want %s", got.Addr(), addr)
	}
}

// TestStrayDescriptorClosed checks a descriptor attached to a message that
// must not carry one is closed, not leaked, and a lend without one fails.
func TestStrayDescriptorClosed(t *testing.T) {
	sup, wrk := pair(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := sup.Send(control.Message{Type: control.TypeStatsRequest, Seq: 1, File: w}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if m, err := receive(t, wrk); err != nil || m.File != nil {
		t.Fatalf("Receive() = %+v, %v; want a stats request and no file", m, err)
	}
	// Our copy of w is closed and so is the receiver's: the pipe reads EOF.
	r.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := r.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("read from the pipe = %d, %v; want EOF (the stray descriptor closed)", n, err)
	}
	if err := sup.Send(control.Message{Type: control.TypeLend, Socket: 1}); err != nil {
		t.Fatal(err)
	}
	if m, err := receive(t, wrk); err == nil {
		t.Errorf("Receive() of a lend without a descriptor = %+v, want an error", m)
	}
}

// TestSendWithin: a bounded send to a peer that stopped reading gives up,
// and leaves no deadline behind for later sends.
func TestSendWithin(t *testing.T) {
	sup, wrk := pair(t)
	m := control.Message{Type: control.TypeAliveRequest, Seq: 1}
	sent := 0
	for ; sent < 1_000_000; sent++ { // fill the buffer: nobody reads
		if err := sup.SendWithin(m, 50*time.Millisecond); err != nil {
			break
		}
	}
	if sent == 1_000_000 {
		t.Fatal("SendWithin never failed on a channel nobody reads")
	}
	for range sent { // make room
		if _, err := receive(t, wrk); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond) // past the last bound
	if err := sup.SendWithin(m, time.Second); err != nil {
		t.Errorf("SendWithin after the reader caught up: %v", err)
	}
	if err := sup.Send(m); err != nil {
		t.Errorf("Send after a bounded send expired: %v", err)
	}
}

// TestHandOverPassesChannelEnd: a handover message carries its role,
// reason and share, and a channel end, and sending it leaves the sender's
// copy non-blocking (Send reaches the descriptor without Fd).
func TestHandOverPassesChannelEnd(t *testing.T) {
	sup, wrk := pair(t)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	f := os.NewFile(uintptr(fds[0]), "handover-end")
	defer f.Close()
	m := control.Message{Type: control.TypeHandOver, Role: control.RoleSend, Reason: control.ReasonRebalance, Share: 3, File: f}
	if err := sup.Send(m); err != nil {
		t.Fatalf("Send(handover): %v", err)
	}
	flags, err := unix.FcntlInt(uintptr(fds[0]), unix.F_GETFL, 0)
	if err != nil || flags&unix.O_NONBLOCK == 0 {
		t.Errorf("sender's descriptor flags = %#x, %v; want O_NONBLOCK kept", flags, err)
	}
	got, err := receive(t, wrk)
	if err != nil || got.Type != control.TypeHandOver || got.Role != control.RoleSend ||
		got.Reason != control.ReasonRebalance || got.Share != 3 || got.File == nil {
		t.Fatalf("Receive() = %+v, %v; want the handover with its channel end", got, err)
	}
	defer got.File.Close()
	if _, err := unix.Write(fds[1], []byte("x")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if n, err := got.File.Read(b); err != nil || n != 1 || b[0] != 'x' {
		t.Errorf("the received end reads %q, %v; want the other end's packet", b[:n], err)
	}
}

// TestHandOverWithoutDescriptorFails: a handover that lost its descriptor
// is an error, as a lend is.
func TestHandOverWithoutDescriptorFails(t *testing.T) {
	sup, wrk := pair(t)
	if err := sup.Send(control.Message{Type: control.TypeHandOver, Role: control.RoleReceive}); err != nil {
		t.Fatal(err)
	}
	if m, err := receive(t, wrk); err == nil {
		t.Fatalf("Receive() = %+v; want an error for a handover without a descriptor", m)
	}
}
