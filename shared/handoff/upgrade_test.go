package handoff_test

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/camelot/lancelot/shared/handoff"
	"github.com/camelot/lancelot/shared/lancelottest"
)

// upgradeChild is a successor: it reads the handoff, prints what it found,
// says ready, prints the verdict and, if accepted, says serving.
func upgradeChild() int {
	u, err := handoff.ReadUpgrade("9.9.9")
	if err != nil || u == nil {
		fmt.Println("error:", err)
		return 1
	}
	var addrs []string
	for _, f := range u.Sockets {
		ln, err := net.FileListener(f)
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		addrs = append(addrs, ln.Addr().String())
	}
	fmt.Printf("protocol=%d sockets=%s running=%d configured=%d from=%s\n", u.Protocol, strings.Join(addrs, ","), u.Running, u.Configured, u.From)
	verdict := u.Ready()
	fmt.Printf("verdict=%v\n", verdict)
	if verdict == nil {
		u.Serving()
	}
	return 0
}

// legacyPredecessorChild is a successor started as release 0.2.0 starts
// one: it must speak version 1.
func legacyPredecessorChild() int {
	u, err := handoff.ReadUpgrade("9.9.9")
	if err != nil || u == nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Printf("protocol=%d running=%d configured=%d\n", u.Protocol, u.Running, u.Configured)
	err = u.Ready()
	fmt.Printf("accepted=%v\n", err)
	return 0
}

// startSuccessor starts the test binary as a successor of role with u and
// the handoff environment plus extra.
func startSuccessor(t *testing.T, role string, u handoff.Upgrade, extra ...string) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	exe, _ := os.Executable()
	cmd := u.Command(exe, nil, append(os.Environ(), envChild+"="+role), "1.0.0")
	cmd.Env = append(cmd.Env, extra...)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := handoff.Start(cmd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, out
}

// readLine reads one raw line from the channel, with a deadline.
func readLine(t *testing.T, br *bufio.Reader, ch *os.File) string {
	t.Helper()
	ch.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("read the channel: %q, %v", line, err)
	}
	return line
}

// TestUpgradeRoundTrip is a whole version 2 handoff between two processes,
// byte for byte.
func TestUpgradeRoundTrip(t *testing.T) {
	f1, a1 := lancelottest.ListenerFile(t)
	f2, a2 := lancelottest.ListenerFile(t)
	local, remote, err := handoff.NewChannel()
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	u := handoff.Upgrade{Sockets: []*os.File{f1, f2}, Channel: remote, Running: 3, Configured: 2}
	cmd, out := startSuccessor(t, "upgrade", u, "LISTEN_PID=1")
	remote.Close()
	br := bufio.NewReader(local)
	if got := readLine(t, br, local); got != "hello 2 9.9.9\n" {
		t.Fatalf("first line %q, want the hello", got)
	}
	if got := readLine(t, br, local); got != "ready\n" {
		t.Fatalf("second line %q, want ready", got)
	}
	if err := handoff.Accept(local); err != nil {
		t.Fatal(err)
	}
	if got := readLine(t, br, local); got != "serving\n" {
		t.Fatalf("third line %q, want serving", got)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("successor: %v\n%s", err, out)
	}
	want := fmt.Sprintf("protocol=2 sockets=%s,%s running=3 configured=2 from=1.0.0\nverdict=<nil>\n", a1, a2)
	if out.String() != want {
		t.Errorf("successor printed %q, want %q", out, want)
	}
}

// TestUpgradeRefusedByPredecessor: the successor's Ready returns the
// predecessor's reason.
func TestUpgradeRefusedByPredecessor(t *testing.T) {
	f1, _ := lancelottest.ListenerFile(t)
	local, remote, _ := handoff.NewChannel()
	defer local.Close()
	cmd, out := startSuccessor(t, "upgrade", handoff.Upgrade{Sockets: []*os.File{f1}, Channel: remote, Running: 1})
	remote.Close()
	br := bufio.NewReader(local)
	readLine(t, br, local)
	readLine(t, br, local)
	handoff.Refuse(local, "supervisor stopping")
	cmd.Wait()
	if !strings.Contains(out.String(), "verdict=the old supervisor refused the handover: supervisor stopping\n") {
		t.Errorf("successor printed %q, want the refusal", out)
	}
}

// TestUpgradeFromLegacy: a successor started as release 0.2.0 starts one
// (its three variables, a pipe) speaks version 1: the byte 0x01, and it
// takes the predecessor's closing of the pipe as acceptance.
func TestUpgradeFromLegacy(t *testing.T) {
	f1, _ := lancelottest.ListenerFile(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	cmd := exec.Command(exe)
	cmd.ExtraFiles = []*os.File{f1, w}
	cmd.Env = append(os.Environ(), envChild+"=legacy-predecessor",
		"LANCELOT_UPGRADE_FDS=1", "LANCELOT_UPGRADE_READY_FD=4", "LANCELOT_UPGRADE_WORKERS=5")
	stdout, _ := cmd.StdoutPipe()
	if err := handoff.Start(cmd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	w.Close()
	lines := make(chan string, 4)
	go func() {
		br := bufio.NewReader(stdout)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				close(lines)
				return
			}
			lines <- line
		}
	}()
	next := func(within time.Duration) string {
		select {
		case line := <-lines:
			return line
		case <-time.After(within):
			return ""
		}
	}
	if got := next(10 * time.Second); got != "protocol=1 running=5 configured=0\n" {
		t.Fatalf("successor printed %q", got)
	}
	b := make([]byte, 2)
	r.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := r.Read(b); n != 1 || b[0] != 0x01 {
		t.Fatalf("read %q, %v from the successor; want the single byte 0x01", b[:n], err)
	}
	// Release 0.2.0 closes its end once it has read the byte: until then
	// the successor must not count itself accepted.
	if got := next(200 * time.Millisecond); got != "" {
		t.Fatalf("before the predecessor closed the pipe the successor printed %q", got)
	}
	r.Close()
	if got := next(10 * time.Second); got != "accepted=<nil>\n" {
		t.Errorf("after the close the successor printed %q", got)
	}
}

// TestUpgradeNoCommonProtocol: an offer of versions this release does not
// speak is refused on the channel, with the offer named.
func TestUpgradeNoCommonProtocol(t *testing.T) {
	f1, _ := lancelottest.ListenerFile(t)
	local, remote, _ := handoff.NewChannel()
	defer local.Close()
	cmd, out := startSuccessor(t, "upgrade", handoff.Upgrade{Sockets: []*os.File{f1}, Channel: remote, Running: 1},
		"LANCELOT_UPGRADE_PROTOCOLS=3,7")
	remote.Close()
	want := "refuse no handoff protocol in common: the old supervisor offers 3,7, lancelot 9.9.9 speaks 1 and 2\n"
	if got := readLine(t, bufio.NewReader(local), local); got != want {
		t.Errorf("successor said %q, want %q", got, want)
	}
	if err := cmd.Wait(); err == nil {
		t.Errorf("successor exited 0 (%q), want a failure", out)
	}
}

// TestUpgradeChecksInheritedSockets: a descriptor that is not a listening
// TCP socket is refused after the hello, naming it.
func TestUpgradeChecksInheritedSockets(t *testing.T) {
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	udpFile, _ := udp.(*net.UDPConn).File()
	defer udpFile.Close()
	devnull, _ := os.Open(os.DevNull)
	defer devnull.Close()
	for _, tc := range []struct {
		name string
		file *os.File
		want string
	}{
		{"a file", devnull, "inherited fd 3: not a socket"},
		{"a UDP socket", udpFile, "inherited fd 3: not a stream socket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			local, remote, _ := handoff.NewChannel()
			defer local.Close()
			cmd, out := startSuccessor(t, "upgrade", handoff.Upgrade{Sockets: []*os.File{tc.file}, Channel: remote, Running: 1})
			remote.Close()
			br := bufio.NewReader(local)
			readLine(t, br, local) // hello
			if got, want := readLine(t, br, local), "refuse "+tc.want+"\n"; got != want {
				t.Errorf("successor said %q, want %q", got, want)
			}
			if err := cmd.Wait(); err == nil || !strings.Contains(out.String(), tc.want) {
				t.Errorf("successor ended %v, printed %q; want a failure naming %q", err, out, tc.want)
			}
		})
	}
}

func TestReportReader(t *testing.T) {
	type r = handoff.Report
	for _, tc := range []struct {
		in      string
		want    []r
		wantErr string
	}{
		// Success cases
		{"pid 42\nhello 2 0.3.0\nready\nserving\n", []r{{Kind: handoff.ReportPID, PID: 42},
			{Kind: handoff.ReportHello, Protocol: 2, Release: "0.3.0"}, {Kind: handoff.ReportReady, Protocol: 2},
			{Kind: handoff.ReportServing}}, "closed"},
		{"pid 42\n\x01", []r{{Kind: handoff.ReportPID, PID: 42}, {Kind: handoff.ReportReady, Protocol: 1}}, "closed"},
		{"hello 3 9.0.0\n", []r{{Kind: handoff.ReportHello, Protocol: 3, Release: "9.0.0"}}, "closed"},
		{"refuse cannot start: no such file\n", []r{{Kind: handoff.ReportRefuse, Reason: "cannot start: no such file"}}, "closed"},
		// Failure cases
		{"", nil, "closed"},
		{"pid x\n", nil, `not the handoff protocol: "pid x"`},
		{"pid -3\n", nil, "not the handoff protocol"},
		{"hello\n", nil, "not the handoff protocol"},
		{"ready 2\n", nil, "not the handoff protocol"},
		{"pid 42\nrea", []r{{Kind: handoff.ReportPID, PID: 42}}, `"rea" then the channel closed`},
		{"GET / HTTP/1.1\r\n", nil, "not the handoff protocol"},
		{strings.Repeat("x", 600), nil, "a line of more than 512 bytes"},
	} {
		rd := handoff.NewReportReader(strings.NewReader(tc.in))
		var got []r
		var err error
		for {
			var rep r
			if rep, err = rd.Next(); err != nil {
				break
			}
			got = append(got, rep)
		}
		if !slices.Equal(got, tc.want) || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("reports of %q = %+v, %v; want %+v, an error with %q", tc.in, got, err, tc.want, tc.wantErr)
		}
		if tc.wantErr == "closed" && !errors.Is(err, handoff.ErrChannelClosed) {
			t.Errorf("reports of %q ended with %v, want ErrChannelClosed", tc.in, err)
		}
	}
}

// TestProtocolPinned holds the handoff protocol's encoding, as Envoy pins
// its hot-restart version: releases on both sides of an upgrade rely on
// it. If this test fails, the encoding changed: bump handoff.Protocol, keep
// speaking the previous version (each release upgrades from and rolls back
// to the one before it), note both in CHANGELOG.md, then update the test.
func TestProtocolPinned(t *testing.T) {
	if handoff.Protocol != 2 || handoff.LegacyProtocol != 1 {
		t.Fatalf("protocol versions %d and %d, pinned 2 and 1", handoff.Protocol, handoff.LegacyProtocol)
	}
	f1, _ := lancelottest.ListenerFile(t)
	f2, _ := lancelottest.ListenerFile(t)
	ch, _ := os.Open(os.DevNull)
	defer ch.Close()
	u := handoff.Upgrade{Sockets: []*os.File{f1, f2}, Channel: ch, Running: 3, Configured: 2}
	cmd := u.Command("/bin/true", []string{"serve"}, []string{"PATH=/bin", "LISTEN_FDS=1", "LANCELOT_UPGRADE_FDS=9",
		"LANCELOT_UPGRADE_PROTOCOLS=7", "WATCHDOG_PID=1", "NOTIFY_SOCKET=/run/n"}, "0.3.0")
	wantEnv := []string{"PATH=/bin", "NOTIFY_SOCKET=/run/n", "LANCELOT_UPGRADE_FDS=2", "LANCELOT_UPGRADE_READY_FD=5",
		"LANCELOT_UPGRADE_WORKERS=3", "LANCELOT_UPGRADE_PROTOCOLS=2", "LANCELOT_UPGRADE_CONFIGURED=2", "LANCELOT_UPGRADE_FROM=0.3.0"}
	if !slices.Equal(cmd.Env, wantEnv) {
		t.Errorf("environment\n %q\nwant\n %q", cmd.Env, wantEnv)
	}
	if !slices.Equal(cmd.ExtraFiles, []*os.File{f1, f2, ch}) {
		t.Errorf("descriptors %v, want the sockets then the channel (fds 3, 4, 5)", cmd.ExtraFiles)
	}
	var b strings.Builder
	handoff.WritePID(&b, 42)
	handoff.Accept(&b)
	handoff.Refuse(&b, "two  words\nand more")
	if want := "pid 42\naccept\nrefuse two words and more\n"; b.String() != want {
		t.Errorf("lines %q, want %q", b.String(), want)
	}
	// The successor's lines are held byte for byte by TestUpgradeRoundTrip
	// (hello, ready, serving), TestUpgradeNoCommonProtocol (refuse) and
	// TestUpgradeFromLegacy (0x01).
}
