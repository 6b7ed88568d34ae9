package loadgen

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	op := func(err error) error { return &net.OpError{Op: "read", Net: "tcp", Err: err} }
	for _, tc := range []struct {
		err  error
		want ErrorKind
	}{
		{op(os.NewSyscallError("connect", syscall.ECONNREFUSED)), Refused},
		{op(os.NewSyscallError("read", syscall.ECONNRESET)), Reset},
		{op(os.NewSyscallError("write", syscall.EPIPE)), Reset},
		// Before the first answer: a reset counts apart, nothing else.
		{unanswered(op(os.NewSyscallError("read", syscall.ECONNRESET))), ResetQueued},
		{unanswered(op(os.NewSyscallError("write", syscall.EPIPE))), ResetQueued},
		{unanswered(op(os.NewSyscallError("connect", syscall.ECONNREFUSED))), Refused},
		{unanswered(io.EOF), EOF},
		{unanswered(op(os.ErrDeadlineExceeded)), Timeout},
		{io.EOF, EOF},
		{fmt.Errorf("ask: %w", io.ErrUnexpectedEOF), EOF},
		{fmt.Errorf("check: %w", ErrWrongAnswer), WrongAnswer},
		{op(os.ErrDeadlineExceeded), Timeout},
		{op(os.NewSyscallError("connect", syscall.ETIMEDOUT)), Timeout},
		{op(os.NewSyscallError("connect", syscall.EADDRNOTAVAIL)), Other},
		{op(os.NewSyscallError("socket", syscall.EMFILE)), Other},
	} {
		if got := Classify(tc.err); got != tc.want {
			t.Errorf("Classify(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

func TestPlan(t *testing.T) {
	child := []string{"child"}
	for _, tc := range []struct {
		cfg        Config
		perProcess int
		want       []int // connections per share; probes go with the first
		sources    int
	}{
		// One process.
		{Config{Connections: 100}, 19000, []int{100}, 1},
		{Config{Connections: 12000, Mode: Idle}, 19000, []int{12000}, 2},
		// Spread over children, the first share less its probes.
		{Config{Connections: 100000, Mode: Idle, ChildArgs: child}, 19900, []int{19896, 16021, 16021, 16021, 16021, 16020}, 11},
		{Config{Connections: 7, ChildArgs: child}, 3, []int{3, 2, 2}, 1},
		{Config{Connections: 4, Probes: 4, Mode: Idle, ChildArgs: child}, 4, []int{0, 4}, 1},
		// The IPv6 loopback has one source address.
		{Config{Server: "[::1]:1060", Connections: 30000, ChildArgs: child}, 20000, []int{20000, 10000}, 1},
	} {
		cfg := tc.cfg.withDefaults()
		shares, err := plan(cfg, tc.perProcess)
		if err != nil {
			t.Fatalf("plan(%+v): %v", cfg, err)
		}
		var got []int
		next := 0
		for _, sh := range shares {
			got = append(got, sh.Conns)
			if sh.First != next || sh.Sources != tc.sources {
				t.Errorf("plan(%d conns): share %+v; want first %d, %d sources", cfg.Connections, sh, next, tc.sources)
			}
			next += sh.Conns
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("plan(%d conns, %d per process) = %v, want %v", cfg.Connections, tc.perProcess, got, tc.want)
		}
	}
}

func TestShardKeepsFewExamples(t *testing.T) {
	s := &shard{t: newTally()}
	for range 2 * maxExamples {
		s.fail(io.EOF)
	}
	s.fail(unanswered(os.NewSyscallError("read", syscall.ECONNRESET)))
	got := s.t
	if got.Errors[EOF] != 2*maxExamples || got.Errors[ResetQueued] != 1 || len(got.Examples) != maxExamples || got.Examples[0] != "eof: EOF" {
		t.Errorf("after %d EOFs and a reset: errors %v, examples %q; want all counted, the first %d kept", 2*maxExamples, got.Errors, got.Examples, maxExamples)
	}
}

func TestPeekClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if err := peekClosed(client); err != nil {
		t.Errorf("open connection: peekClosed = %v, want nil", err)
	}
	server.Close()
	deadline := time.Now().Add(5 * time.Second)
	for err = peekClosed(client); err == nil && time.Now().Before(deadline); err = peekClosed(client) {
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(err, io.EOF) {
		t.Errorf("closed connection: peekClosed = %v, want EOF", err)
	}
}

func TestSourcesFor(t *testing.T) {
	for _, tc := range []struct{ conns, perSource, want int }{
		{1, 10000, 1},
		{10000, 10000, 1},
		{10001, 10000, 2},
		{45000, 10000, 5},
		{10_000_000, 10000, MaxSources},
	} {
		if got := SourcesFor(tc.conns, tc.perSource); got != tc.want {
			t.Errorf("SourcesFor(%d, %d) = %d, want %d", tc.conns, tc.perSource, got, tc.want)
		}
	}
}

func TestSourcesIP(t *testing.T) {
	if ip := (Sources{}).IP(3); ip != nil {
		t.Errorf("Sources{}.IP(3) = %s, want nil (the kernel picks)", ip)
	}
	for _, tc := range []struct {
		s    Sources
		i    int
		want string
	}{
		{Sources{First: 1, N: 3}, 0, "127.0.0.1"},
		{Sources{First: 1, N: 3}, 4, "127.0.0.2"},
		{Sources{First: 2, N: 254}, 253, "127.0.0.255"},
		{Sources{First: 2}, 9, "127.0.0.2"},
	} {
		if got := tc.s.IP(tc.i).String(); got != tc.want {
			t.Errorf("%+v.IP(%d) = %s, want %s", tc.s, tc.i, got, tc.want)
		}
	}
}
