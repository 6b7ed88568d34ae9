package pid1

import (
	"fmt"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestMessage(t *testing.T) {
	for _, tc := range []struct {
		lines   []string
		main    int
		barrier int
		upward  string
	}{
		// Success cases.
		{lines: []string{"MAINPID=42", "READY=1", "STATUS=serving"}, main: 42, upward: "READY=1\nSTATUS=serving"},
		{lines: []string{"READY=1", ""}, upward: "READY=1"},
		{lines: []string{barrierKey + "3"}, barrier: 3},
		// Failure cases: never PID 1 itself, never a non-number.
		{lines: []string{"MAINPID=1"}},
		{lines: []string{"MAINPID=x", "STOPPING=1"}, upward: "STOPPING=1"},
		{lines: []string{"MAINPID=-5"}},
	} {
		m := message{pid: 7, lines: tc.lines}
		if have := m.mainPID(); have != tc.main {
			t.Errorf("mainPID(%q) = %d, want %d", tc.lines, have, tc.main)
		}
		if have := m.barrier(); have != tc.barrier {
			t.Errorf("barrier(%q) = %d, want %d", tc.lines, have, tc.barrier)
		}
		if have := m.upward(); have != tc.upward {
			t.Errorf("upward(%q) = %q, want %q", tc.lines, have, tc.upward)
		}
	}
}

func TestChildEnv(t *testing.T) {
	have := childEnv([]string{"A=1", "NOTIFY_SOCKET=/run/x", "WATCHDOG_PID=1", "WATCHDOG_USEC=5"}, "@mine")
	want := []string{"A=1", "WATCHDOG_USEC=5", "NOTIFY_SOCKET=@mine"}
	if !slices.Equal(have, want) {
		t.Errorf("childEnv = %q, want %q", have, want)
	}
}

func TestExitStatus(t *testing.T) {
	for _, tc := range []struct {
		ws   unix.WaitStatus
		want int
	}{
		{ws: 0, want: 0},
		{ws: 3 << 8, want: 3},
		{ws: unix.WaitStatus(unix.SIGKILL), want: 137},
		{ws: unix.WaitStatus(unix.SIGTERM), want: 143},
	} {
		if have := exitStatus(tc.ws); have != tc.want {
			t.Errorf("exitStatus(%#x) = %d, want %d", uint32(tc.ws), have, tc.want)
		}
	}
}

// TestNotifySocket sends over a real socket: the kernel names the sender,
// and the barrier comes back after what was sent before it.
func TestNotifySocket(t *testing.T) {
	s, err := listenNotify()
	if err != nil {
		t.Fatal(err)
	}
	msgs, done := make(chan message, 4), make(chan struct{})
	defer func() { close(done); s.Close() }()
	go s.read(msgs, done)
	if err := s.sendBarrier(1); err != nil {
		t.Fatal(err)
	}
	if err := s.sendBarrier(2); err != nil {
		t.Fatal(err)
	}
	for want := 1; want <= 2; want++ {
		var m message
		select {
		case m = <-msgs:
		case <-time.After(5 * time.Second):
			t.Fatalf("barrier %d never came back", want)
		}
		if m.barrier() != want || m.pid != unix.Getpid() {
			t.Errorf("message %d: barrier %d from pid %d, want barrier %d from %d", want, m.barrier(), m.pid, want, unix.Getpid())
		}
	}
}

// TestHandle: which MAINPID= the loop follows, and what it passes on.
func TestHandle(t *testing.T) {
	var up []string
	in := &state{
		opts:    Options{Logger: slog.New(slog.DiscardHandler), Notify: func(s string) { up = append(up, s) }},
		current: 100,
		exits:   map[int]int{200: 3},
	}
	self := os.Getpid() // alive
	for _, tc := range []struct {
		m       message
		current int
		ended   bool
	}{
		// From outside the namespace (no sender pid): ignored.
		{m: message{pid: 0, lines: []string{fmt.Sprintf("MAINPID=%d", self)}}, current: 100},
		// A process that does not exist: ignored.
		{m: message{pid: 5, lines: []string{"MAINPID=999999999"}}, current: 100},
		// A live process: followed.
		{m: message{pid: 5, lines: []string{fmt.Sprintf("MAINPID=%d", self), "READY=1"}}, current: self},
		// One already reaped: followed, and it has ended with its status.
		{m: message{pid: 5, lines: []string{"MAINPID=200"}}, current: 200, ended: true},
	} {
		in.handle(tc.m)
		if in.current != tc.current || in.ended != tc.ended {
			t.Errorf("handle(%+v): current %d ended %v, want %d %v", tc.m, in.current, in.ended, tc.current, tc.ended)
		}
	}
	if in.status != 3 {
		t.Errorf("status %d, want 3 (pid 200's)", in.status)
	}
	if !slices.Equal(up, []string{"READY=1"}) {
		t.Errorf("passed on %q, want only READY=1", up)
	}
}
