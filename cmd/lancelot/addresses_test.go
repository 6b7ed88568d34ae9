package main

// Several listening addresses, dual-stack wildcards, and reloads that add
// and remove addresses.

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camelot/lancelot/shared/lancelottest"
	"github.com/camelot/lancelot/supervisor"
)

// loopbacks returns 127.0.0.1:P .. 127.0.0.n:P on one free port.
func loopbacks(t testing.TB, n int) []string {
	t.Helper()
	port := lancelottest.FreePort(t)
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("127.0.0.%d:%d", i+1, port)
	}
	return addrs
}

// startOn starts serve on the addresses (and args) and waits until it is
// ready.
func startOn(t testing.TB, addrs []string, args ...string) *server {
	t.Helper()
	argv := []string{"serve", "--pid-file", ""}
	for _, a := range addrs {
		argv = append(argv, "--listen", a)
	}
	s := launchServer(t, append(argv, args...), nil)
	s.waitReady()
	return s
}

// answers reports whether addr answers a question now.
func answers(addr string) error {
	got, err := lancelottest.AskOnce(addr, lancelottest.QName, 2*time.Second)
	if err == nil && got != lancelottest.AName {
		err = fmt.Errorf("answered %q", got)
	}
	return err
}

// socketsByAddr counts status's sockets by address.
func socketsByAddr(st supervisor.Status) map[string]int {
	n := map[string]int{}
	for _, sock := range st.Sockets {
		if !sock.Retiring {
			n[sock.Addr]++
		}
	}
	return n
}

// TestSeveralAddresses: every address given gets one socket per worker,
// each served; TTIN and TTOU add and take them per address; status lists
// every socket with its address.
func TestSeveralAddresses(t *testing.T) {
	t.Parallel()
	addrs := loopbacks(t, 3)
	s := startOn(t, addrs, "--workers", "2")
	st := s.waitQuiet()
	requireEverySocketServed(t, st)
	for _, a := range addrs {
		if n := socketsByAddr(st)[a]; n != 2 {
			t.Errorf("%s has %d sockets, want 2 (one per worker): %+v", a, n, st.Sockets)
		}
		if err := answers(a); err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
	for _, sl := range st.Slots {
		if len(sl.Home) != 3 {
			t.Errorf("slot %d is home to sockets %v, want one of each address", sl.Slot, sl.Home)
		}
	}
	s.signal(syscall.SIGTTIN)
	st = s.waitStatus("3 workers after TTIN", func(st supervisor.Status) bool { return settled(st) && len(st.Slots) == 3 })
	for _, a := range addrs {
		if n := socketsByAddr(st)[a]; n != 3 {
			t.Errorf("after TTIN %s has %d sockets, want 3", a, n)
		}
	}
	requireEverySocketServed(t, st)
	text := runCLI(t, 10*time.Second, "status", "--pid-file", s.pidFile).stdout
	for _, a := range addrs {
		if strings.Count(text, " "+a+": served by ") != 3 {
			t.Errorf("status text does not list 3 sockets on %s:\n%s", a, text)
		}
	}
}

// TestSecondAddressTaken: one address of several held by another process
// refuses the start, naming it, and nothing is left listening.
func TestSecondAddressTaken(t *testing.T) {
	t.Parallel()
	addrs := loopbacks(t, 2)
	held, err := net.Listen("tcp", addrs[1])
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	r := runCLI(t, 10*time.Second, "serve", "--listen", addrs[0], "--listen", addrs[1])
	if r.code == 0 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "listen on "+addrs[1]+": another process is already listening there") {
		t.Errorf("serve with %s taken: exit %d, %q; want one line naming it", addrs[1], r.code, r.stderr)
	}
	if err := answers(addrs[0]); err == nil {
		t.Errorf("%s answers after the refused start", addrs[0])
	}
}

// TestDualStackWildcard: ":PORT" serves IPv4 and IPv6 clients with one
// socket per worker; "0.0.0.0:PORT" stays IPv4 only.
func TestDualStackWildcard(t *testing.T) {
	t.Parallel()
	if ln, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	} else {
		ln.Close()
	}
	port := strconv.Itoa(lancelottest.FreePort(t))
	s := startOn(t, []string{":" + port}, "--workers", "2")
	for _, a := range []string{"127.0.0.1:" + port, "[::1]:" + port} {
		if err := answers(a); err != nil {
			t.Errorf(":%s does not answer on %s: %v", port, a, err)
		}
	}
	if st := s.waitQuiet(); len(st.Sockets) != 2 || st.Sockets[0].Addr != "[::]:"+port {
		t.Errorf(":%s: sockets %+v, want 2 on [::]:%s", port, st.Sockets, port)
	}
	port4 := strconv.Itoa(lancelottest.FreePort(t))
	startOn(t, []string{"0.0.0.0:" + port4}, "--workers", "1")
	if err := answers("127.0.0.1:" + port4); err != nil {
		t.Errorf("0.0.0.0:%s does not answer on 127.0.0.1: %v", port4, err)
	}
	if err := answers("[::1]:" + port4); err == nil {
		t.Errorf("0.0.0.0:%s answers on ::1, want IPv4 only", port4)
	}
}

// TestReloadChangesAddresses: a reload that drops one address and adds
// another, under load on an address that stays: no failed client there,
// the new one serves, the dropped one refuses; clients queued on the
// dropped one when it goes are answered, not reset.
func TestReloadChangesAddresses(t *testing.T) {
	addrs := loopbacks(t, 3)
	keep, drop, add := addrs[0], addrs[1], addrs[2]
	cfg := filepath.Join(t.TempDir(), "lancelot.yaml")
	writeFile(t, cfg, fmt.Sprintf("listen:\n  - %q\n  - %q\n", keep, drop))
	// No heartbeat: the test stops the workers to make clients queue.
	s := launchServer(t, []string{"serve", "--pid-file", "", "--config", cfg, "--workers", "2", "--worker-timeout", "0s"}, nil)
	s.waitReady()
	l := startLoad(t, keep, 4, 4)
	l.waitExchanges(1000)

	// Queue clients on the address about to go: nobody accepts while the
	// workers are stopped.
	workers := s.workerPIDs()
	for _, w := range workers {
		syscall.Kill(w, syscall.SIGSTOP)
	}
	stopped := true
	cont := func() {
		if stopped {
			for _, w := range workers {
				syscall.Kill(w, syscall.SIGCONT)
			}
			stopped = false
		}
	}
	t.Cleanup(cont)
	var queued []*lancelottest.Client
	for range 10 {
		c := lancelottest.Dial(t, drop)
		c.Send(lancelottest.QQuest)
		queued = append(queued, c)
	}
	writeFile(t, cfg, fmt.Sprintf("listen:\n  - %q\n  - %q\n", keep, add))
	reload := make(chan cliResult, 1)
	go func() { reload <- runCLI(t, time.Minute, "reload", "--pid-file", s.pidFile) }()
	s.waitStatus("the dropped address retiring", func(st supervisor.Status) bool {
		return slices.ContainsFunc(st.Sockets, func(sock supervisor.SocketStatus) bool { return sock.Retiring || sock.Addr == add })
	})
	cont()
	for _, c := range queued {
		c.ExpectAll(lancelottest.AQuest)
	}
	if r := <-reload; r.code != 0 {
		t.Fatalf("reload: exit %d, %q", r.code, r.stderr)
	}
	// The long-lived clients keep the replaced workers draining.
	st := s.waitStatus("the reload settled", settled)
	if n := socketsByAddr(st); n[keep] != 2 || n[add] != 2 || n[drop] != 0 || len(st.Sockets) != 4 {
		t.Errorf("after the reload, sockets by address %v (%+v); want 2 on %s, 2 on %s, none on %s", n, st.Sockets, keep, add, drop)
	}
	requireEverySocketServed(t, st)
	if err := answers(add); err != nil {
		t.Errorf("the added %s: %v", add, err)
	}
	lancelottest.WaitFor(t, 10*time.Second, "the dropped address refusing", func() bool {
		_, err := net.DialTimeout("tcp", drop, time.Second)
		return errors.Is(err, syscall.ECONNREFUSED)
	})
	l.waitExchanges(1000)
	l.requireNoFailures()
}

// TestUpgradeKeepsAddresses: a binary upgrade hands over every address.
func TestUpgradeKeepsAddresses(t *testing.T) {
	addrs := loopbacks(t, 2)
	bin := copyBinary(t)
	saved := binPath
	binPath = bin
	s := startOn(t, addrs, "--workers", "2")
	binPath = saved
	t.Cleanup(func() { killUpgraded(s) })
	r := runCLI(t, time.Minute, "upgrade", "--pid-file", s.pidFile)
	if r.code != 0 {
		t.Fatalf("upgrade: exit %d, %q", r.code, r.stderr)
	}
	st, err := statusOfPID(s.pidFromFile())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n := socketsByAddr(st)[a]; n != 2 {
			t.Errorf("the new supervisor has %d sockets on %s, want 2", n, a)
		}
		if err := answers(a); err != nil {
			t.Errorf("%s after the upgrade: %v", a, err)
		}
	}
}

// TestSocketActivationSeveralAddresses: every socket systemd passes is
// served, whatever its address, and a reload keeps them (the socket
// unit's ListenStream= lines decide): the configuration's own address is
// not bound, and the reload's new workers serve both passed sockets.
func TestSocketActivationSeveralAddresses(t *testing.T) {
	activate := requireTool(t, "systemd-socket-activate")
	addrs := loopbacks(t, 2)
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "lancelot.pid")
	otherPort := lancelottest.FreePort(t)
	config := filepath.Join(dir, "lancelot.yaml")
	writeFile(t, config, fmt.Sprintf("listen: 127.0.0.1:%d\n", otherPort))
	a := startActivatedOn(t, activate, addrs, "serve", "--workers", "2", "--pid-file", pidFile, "--config", config)
	lancelottest.WaitFor(t, 20*time.Second, "systemd-socket-activate listening", func() bool {
		c, err := net.DialTimeout("tcp", addrs[1], time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	for _, a := range addrs {
		if err := firstAnswer(a); err != nil { // the first starts the service
			t.Errorf("%s: %v", a, err)
		}
	}
	lancelottest.WaitFor(t, 10*time.Second, "pid file", func() bool { _, err := os.Stat(pidFile); return err == nil })
	st := waitQuiet(t, pidFile, 10*time.Second)
	if n := socketsByAddr(st); n[addrs[0]] != 1 || n[addrs[1]] != 1 {
		t.Errorf("sockets by address %v, want the passed one on each of %v", n, addrs)
	}
	requireEverySocketServed(t, st)

	before := slotPIDs(st)
	if r := runCLI(t, time.Minute, "reload", "--pid-file", pidFile); r.code != 0 {
		t.Fatalf("reload exited %d: %q\n%s", r.code, r.stderr, a.logs)
	}
	st = waitQuiet(t, pidFile, 10*time.Second)
	if both := common(before, slotPIDs(st)); len(both) > 0 {
		t.Errorf("workers %v not replaced: the reload did not happen", both)
	}
	if n := socketsByAddr(st); len(n) != 2 || n[addrs[0]] != 1 || n[addrs[1]] != 1 {
		t.Errorf("after the reload, sockets by address %v; want the passed one on each of %v, nothing else", n, addrs)
	}
	if n := listeningSockets(t, otherPort); n != 0 {
		t.Errorf("the reload bound %d sockets on the configured port %d; want none", n, otherPort)
	}
	for _, a := range addrs {
		if err := answers(a); err != nil {
			t.Errorf("%s after the reload: %v", a, err)
		}
	}
	requireEverySocketServed(t, st)
}
