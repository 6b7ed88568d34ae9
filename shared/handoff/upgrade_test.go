package handoff_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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
	fmt.Printf("protocol=%d sockets=%s running=%d configured=%d from=%s activated=%v\n", u.Protocol, strings.Join(addrs, ","),
		u.Running, u.Configured, u.From, u.Activated)
	verdict := u.Ready()
	fmt.Printf("verdict=%v\n", verdict)
	if verdict == nil {
		n, _ := strconv.Atoi(os.Getenv("HANDOFF_TEST_ENDS"))
		if err := u.Serving(testEnds(n)); err != nil {
			fmt.Println("serving:", err)
			return 1
		}
		sigs, err := u.Requests()
		fmt.Printf("requests=%v err=%v\n", sigs, err)
	}
	if verdict != nil {
		return 1
	}
	return 0
}

// testEnds returns n pipes' read ends, each with "end I\n" waiting in it.
func testEnds(n int) []*os.File {
	var ends []*os.File
	for i := range n {
		r, w, err := os.Pipe()
		if err != nil {
			panic(err)
		}
		fmt.Fprintf(w, "end %d\n", i)
		w.Close()
		ends = append(ends, r)
	}
	return ends
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

// TestUpgradeRoundTrip is a whole version 3 handoff between two processes,
// byte for byte, the connection receivers included.
func TestUpgradeRoundTrip(t *testing.T) {
	f1, a1 := lancelottest.ListenerFile(t)
	f2, a2 := lancelottest.ListenerFile(t)
	local, remote, err := handoff.NewChannel()
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	u := handoff.Upgrade{Sockets: []*os.File{f1, f2}, Activated: []bool{false, true}, Channel: remote, Running: 3, Configured: 2}
	cmd, out := startSuccessor(t, "upgrade", u, "LISTEN_PID=1", "HANDOFF_TEST_ENDS=70")
	remote.Close()
	rd := handoff.NewChannelReader(local)
	defer rd.Close()
	next := func() handoff.Report {
		t.Helper()
		local.SetReadDeadline(time.Now().Add(10 * time.Second))
		rep, err := rd.Next()
		if err != nil {
			t.Fatalf("read the channel: %v\n%s", err, out)
		}
		return rep
	}
	if rep := next(); rep.Kind != handoff.ReportHello || rep.Protocol != 3 || rep.Release != "9.9.9" {
		t.Fatalf("first report %+v, want hello 3 9.9.9", rep)
	}
	if rep := next(); rep.Kind != handoff.ReportReady {
		t.Fatalf("second report %+v, want ready", rep)
	}
	if err := handoff.Accept(local); err != nil {
		t.Fatal(err)
	}
	if rep := next(); rep.Kind != handoff.ReportServing {
		t.Fatalf("third report %+v, want serving", rep)
	}
	rep := next()
	if rep.Kind != handoff.ReportConns || len(rep.Files) != 70 {
		t.Fatalf("fourth report %v with %d files, want conns with 70 (two batches)", rep.Kind, len(rep.Files))
	}
	if err := handoff.WriteRequests(local, []syscall.Signal{syscall.SIGTTIN, syscall.SIGHUP, syscall.SIGTTIN}); err != nil {
		t.Fatal(err)
	}
	for i, f := range rep.Files {
		b, err := io.ReadAll(f)
		f.Close()
		if want := fmt.Sprintf("end %d\n", i); string(b) != want || err != nil {
			t.Errorf("receiver %d reads %q, %v; want %q", i, b, err, want)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("successor: %v\n%s", err, out)
	}
	want := fmt.Sprintf("protocol=3 sockets=%s,%s running=3 configured=2 from=1.0.0 activated=[false true]\nverdict=<nil>\n"+
		"requests=[stopped (tty input) hangup stopped (tty input)] err=<nil>\n", a1, a2)
	if out.String() != want {
		t.Errorf("successor printed %q, want %q", out, want)
	}
}

// TestUpgradeToRelease030 is the predecessor's side with a successor that
// offers only version 2 (release 0.3.0, seen through the offer it gets):
// hello 2, and no conns after serving.
func TestUpgradeVersion2(t *testing.T) {
	f1, _ := lancelottest.ListenerFile(t)
	local, remote, _ := handoff.NewChannel()
	defer local.Close()
	cmd, out := startSuccessor(t, "upgrade", handoff.Upgrade{Sockets: []*os.File{f1}, Channel: remote, Running: 1},
		"LANCELOT_UPGRADE_PROTOCOLS=2", "HANDOFF_TEST_ENDS=2")
	remote.Close()
	br := bufio.NewReader(local)
	if got := readLine(t, br, local); got != "hello 2 9.9.9\n" {
		t.Fatalf("first line %q, want hello 2", got)
	}
	readLine(t, br, local)
	handoff.Accept(local)
	if got := readLine(t, br, local); got != "serving\n" {
		t.Fatalf("line %q, want serving", got)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("successor: %v\n%s", err, out)
	}
	if rest, _ := io.ReadAll(br); len(rest) != 0 {
		t.Errorf("after serving a version 2 successor sent %q, want nothing (no conns)", rest)
	}
}

// TestUpgradeRefusedByPredecessor: the successor's Ready returns the
// predecessor's reason, and the successor fails.
func TestUpgradeRefusedByPredecessor(t *testing.T) {
	f1, _ := lancelottest.ListenerFile(t)
	local, remote, _ := handoff.NewChannel()
	defer local.Close()
	cmd, out := startSuccessor(t, "upgrade", handoff.Upgrade{Sockets: []*os.File{f1}, Channel: remote, Running: 1})
	remote.Close()
	br := bufio.NewReader(local)
	if got := readLine(t, br, local); got != "hello 3 9.9.9\n" {
		t.Fatalf("first line %q, want the hello", got)
	}
	if got := readLine(t, br, local); got != "ready\n" {
		t.Fatalf("second line %q, want ready", got)
	}
	handoff.Refuse(local, "supervisor stopping")
	if err := cmd.Wait(); err == nil {
		t.Errorf("successor exited 0 after a refusal; want a failure")
	}
	if !strings.Contains(out.String(), "verdict=the old supervisor refused the handover: supervisor stopping\n") {
		t.Errorf("successor printed %q, want the refusal", out)
	}
	if rest, _ := io.ReadAll(br); len(rest) != 0 {
		t.Errorf("after the refusal the successor sent %q, want nothing", rest)
	}
}

// TestUpgradeFromRelease020Refused: a successor started as release 0.2.0
// starts one (its three variables, a pipe, no offer) fails at once with
// the error that says to go through 0.3.0, writing nothing to the pipe.
func TestUpgradeFromRelease020Refused(t *testing.T) {
	f1, _ := lancelottest.ListenerFile(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	exe, _ := os.Executable()
	cmd := exec.Command(exe)
	cmd.ExtraFiles = []*os.File{f1, w}
	cmd.Env = append(os.Environ(), envChild+"=upgrade",
		"LANCELOT_UPGRADE_FDS=1", "LANCELOT_UPGRADE_READY_FD=4", "LANCELOT_UPGRADE_WORKERS=5")
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := handoff.Start(cmd); err != nil {
		t.Fatal(err)
	}
	w.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("successor of 0.2.0 exited 0, want a failure")
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("successor of 0.2.0 still running after 10s")
	}
	if !strings.Contains(out.String(), "release 0.2.0") || !strings.Contains(out.String(), "0.3.0 first") {
		t.Errorf("successor printed %q, want the error naming 0.2.0 and 0.3.0", out)
	}
	if b, _ := io.ReadAll(r); len(b) != 0 {
		t.Errorf("successor wrote %q to 0.2.0's pipe, want nothing", b)
	}
}

// TestUpgradeNoCommonProtocol: an offer of versions this release does not
// speak is refused on the channel, with the offer named.
func TestUpgradeNoCommonProtocol(t *testing.T) {
	f1, _ := lancelottest.ListenerFile(t)
	local, remote, _ := handoff.NewChannel()
	defer local.Close()
	cmd, out := startSuccessor(t, "upgrade", handoff.Upgrade{Sockets: []*os.File{f1}, Channel: remote, Running: 1},
		"LANCELOT_UPGRADE_PROTOCOLS=1,4,7")
	remote.Close()
	want := "refuse no handoff protocol in common: the old supervisor offers 1,4,7, lancelot 9.9.9 speaks 2,3\n"
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
			{Kind: handoff.ReportHello, Protocol: 2, Release: "0.3.0"}, {Kind: handoff.ReportReady},
			{Kind: handoff.ReportServing}}, "closed"},
		{"hello 3 0.4.0\nready\nserving\nconns 0\n", []r{{Kind: handoff.ReportHello, Protocol: 3, Release: "0.4.0"},
			{Kind: handoff.ReportReady}, {Kind: handoff.ReportServing}, {Kind: handoff.ReportConns}}, "closed"},
		{"hello 4 9.0.0\n", []r{{Kind: handoff.ReportHello, Protocol: 4, Release: "9.0.0"}}, "closed"},
		{"refuse cannot start: no such file\n", []r{{Kind: handoff.ReportRefuse, Reason: "cannot start: no such file"}}, "closed"},
		// Failure cases
		{"", nil, "closed"},
		{"pid x\n", nil, `not the handoff protocol: "pid x"`},
		{"pid -3\n", nil, "not the handoff protocol"},
		{"hello\n", nil, "not the handoff protocol"},
		{"ready 2\n", nil, "not the handoff protocol"},
		{"pid 42\n\x01", []r{{Kind: handoff.ReportPID, PID: 42}}, "release 0.2.0's ready byte"},
		{"conns 2\n\x00", nil, "came with fewer descriptors"}, // a plain reader gets none
		{"conns 2000\n", nil, "not the handoff protocol"},
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
		if !slices.EqualFunc(got, tc.want, sameReport) || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("reports of %q = %+v, %v; want %+v, an error with %q", tc.in, got, err, tc.want, tc.wantErr)
		}
		if tc.wantErr == "closed" && !errors.Is(err, handoff.ErrChannelClosed) {
			t.Errorf("reports of %q ended with %v, want ErrChannelClosed", tc.in, err)
		}
	}
}

func sameReport(a, b handoff.Report) bool {
	return a.Kind == b.Kind && a.PID == b.PID && a.Protocol == b.Protocol && a.Release == b.Release &&
		a.Reason == b.Reason && len(a.Files) == len(b.Files)
}

// TestProtocolPinned holds the handoff protocol's encoding, as Envoy pins
// its hot-restart version: releases on both sides of an upgrade rely on
// it. If this test fails, the encoding changed: add a version to the set
// spoken (each release upgrades from and rolls back to the one before
// it), note it in CHANGELOG.md, then update the test.
func TestProtocolPinned(t *testing.T) {
	if handoff.Protocol != 3 || !handoff.Speaks(2) || !handoff.Speaks(3) || handoff.Speaks(1) || handoff.Speaks(4) {
		t.Fatalf("protocol %d; pinned: speaks 2 and 3, not 1 (release 0.2.0) nor 4", handoff.Protocol)
	}
	if c := handoff.Can(2); c != (handoff.Capabilities{}) {
		t.Errorf("version 2 can %+v, want nothing beyond itself", c)
	}
	if c := handoff.Can(3); c != (handoff.Capabilities{Activated: true, Conns: true, Requests: true}) {
		t.Errorf("version 3 can %+v, want conns, activated and requests", c)
	}
	f1, _ := lancelottest.ListenerFile(t)
	f2, _ := lancelottest.ListenerFile(t)
	ch, _ := os.Open(os.DevNull)
	defer ch.Close()
	u := handoff.Upgrade{Sockets: []*os.File{f1, f2}, Activated: []bool{true, false}, Channel: ch, Running: 3, Configured: 2}
	cmd := u.Command("/bin/true", []string{"serve"}, []string{"PATH=/bin", "LISTEN_FDS=1", "LANCELOT_UPGRADE_FDS=9",
		"LANCELOT_UPGRADE_PROTOCOLS=7", "WATCHDOG_PID=1", "NOTIFY_SOCKET=/run/n"}, "0.4.0")
	wantEnv := []string{"PATH=/bin", "NOTIFY_SOCKET=/run/n", "LANCELOT_UPGRADE_FDS=2", "LANCELOT_UPGRADE_READY_FD=5",
		"LANCELOT_UPGRADE_WORKERS=3", "LANCELOT_UPGRADE_PROTOCOLS=2,3", "LANCELOT_UPGRADE_CONFIGURED=2",
		"LANCELOT_UPGRADE_FROM=0.4.0", "LANCELOT_UPGRADE_ACTIVATED=0"}
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
	// (hello, ready, serving, conns with its descriptors: see
	// TestConnsEncoding), TestUpgradeVersion2 and TestUpgradeNoCommonProtocol
	// (refuse); the predecessor's requests by TestRequestsEncoding.
}

// TestConnsEncoding pins "conns K": the line, then one zero byte per batch
// of at most 64 descriptors, each batch riding its byte.
func TestConnsEncoding(t *testing.T) {
	local, remote, err := handoff.NewChannel()
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	u := handoff.Upgrade{Protocol: 3, Channel: remote}
	ends := make([]*os.File, 65)
	for i := range ends {
		ends[i], _ = os.Open(os.DevNull)
		defer ends[i].Close()
	}
	if err := u.Serving(ends); err != nil {
		t.Fatal(err)
	}
	u.Close() // the successor's Requests would, once it read them
	sc, _ := local.SyscallConn()
	var got []byte
	var fds []int
	for {
		buf, oob := make([]byte, 64), make([]byte, 4096)
		var n, oobn int
		var rerr error
		sc.Read(func(fd uintptr) bool {
			n, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_CMSG_CLOEXEC)
			return rerr != unix.EAGAIN
		})
		if rerr != nil || n == 0 {
			break
		}
		got = append(got, buf[:n]...)
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		for _, m := range msgs {
			rights, _ := unix.ParseUnixRights(&m)
			got = append(got, fmt.Sprintf("<%d fds>", len(rights))...)
			fds = append(fds, rights...)
		}
	}
	for _, fd := range fds {
		unix.Close(fd)
	}
	if want := "serving\nconns 65\n\x00<64 fds>\x00<1 fds>"; string(got) != want {
		t.Errorf("the channel carried %q, want %q", got, want)
	}
}

// TestRequestsEncoding pins the requests a predecessor passes on (version
// 3): a line per request, in order, then "done"; the successor reads them
// back, and a channel that ends or says anything else first is an error
// that keeps what came before.
func TestRequestsEncoding(t *testing.T) {
	sigs := []syscall.Signal{syscall.SIGTTIN, syscall.SIGTTIN, syscall.SIGHUP, syscall.SIGTTOU}
	var b strings.Builder
	if err := handoff.WriteRequests(&b, sigs); err != nil {
		t.Fatal(err)
	}
	if want := "request TTIN\nrequest TTIN\nrequest HUP\nrequest TTOU\ndone\n"; b.String() != want {
		t.Errorf("lines %q, want %q", b.String(), want)
	}
	if err := handoff.WriteRequests(io.Discard, []syscall.Signal{syscall.SIGUSR2}); err == nil {
		t.Error("USR2 passed on as a request; want an error (an upgrade is not passed on)")
	}
	for _, tc := range []struct {
		name, sent string
		want       []syscall.Signal
		err        bool
	}{
		{"all", b.String(), sigs, false},
		{"none", "done\n", nil, false},
		{"predecessor died", "request HUP\nrequest TT", []syscall.Signal{syscall.SIGHUP}, true},
		{"not a request", "request USR2\ndone\n", nil, true},
		{"garbage", "conns 3\n", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			go func() { io.WriteString(w, tc.sent); w.Close() }()
			got, err := (&handoff.Upgrade{Protocol: 3, Channel: r}).Requests()
			if !slices.Equal(got, tc.want) || (err != nil) != tc.err {
				t.Errorf("read %v, %v; want %v, error %v", got, err, tc.want, tc.err)
			}
		})
	}
	got, err := (&handoff.Upgrade{Protocol: 2, Channel: os.NewFile(^uintptr(0), "none")}).Requests()
	if got != nil || err != nil {
		t.Errorf("version 2: %v, %v; want nothing (release 0.3.0 signals its requests)", got, err)
	}
}
