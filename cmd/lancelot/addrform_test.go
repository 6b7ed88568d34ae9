package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/camelot/lancelot/shared/lancelottest"
)

// TestReloadChangesAddressForm: a reload may bind another form of address
// on a port the supervisor already listens on, and the supervisor's own
// sockets are not "another process": ":P" to "0.0.0.0:P", and
// "127.0.0.2:P" added beside ":P". Clients on 127.0.0.1:P are served
// throughout, with no failure. (0.3.0: the reload failed, "another process
// is already listening there".)
func TestReloadChangesAddressForm(t *testing.T) {
	for _, tc := range []struct {
		name     string
		from, to func(port int) []string
		ask      []string // hosts that must answer afterwards, on the port
	}{
		{"wildcard to IPv4 wildcard",
			func(p int) []string { return []string{fmt.Sprintf(":%d", p)} },
			func(p int) []string { return []string{fmt.Sprintf("0.0.0.0:%d", p)} },
			[]string{"127.0.0.1", "127.0.0.2"}},
		{"loopback beside the wildcard",
			func(p int) []string { return []string{fmt.Sprintf(":%d", p)} },
			func(p int) []string { return []string{fmt.Sprintf(":%d", p), fmt.Sprintf("127.0.0.2:%d", p)} },
			[]string{"127.0.0.1", "127.0.0.2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := lancelottest.FreePort(t)
			cfg := filepath.Join(t.TempDir(), "lancelot.yaml")
			writeFile(t, cfg, listenYAML(tc.from(port)))
			s := launchServer(t, []string{"serve", "--pid-file", "", "--config", cfg, "--workers", "2"}, nil)
			s.waitReady()
			l := startLoad(t, fmt.Sprintf("127.0.0.1:%d", port), 4, 2)
			l.waitExchanges(500)
			writeFile(t, cfg, listenYAML(tc.to(port)))
			if r := runCLI(t, time.Minute, "reload", "--pid-file", s.pidFile); r.code != 0 {
				t.Fatalf("reload to %v: exit %d, %q", tc.to(port), r.code, r.stderr)
			}
			st := s.waitStatus("the reload settled", settled)
			if got, want := len(socketsByAddr(st)), len(tc.to(port)); got != want {
				t.Errorf("sockets by address %v, want %d addresses (%v)", socketsByAddr(st), want, tc.to(port))
			}
			requireEverySocketServed(t, st)
			for _, host := range tc.ask {
				if err := answers(fmt.Sprintf("%s:%d", host, port)); err != nil {
					t.Errorf("%s:%d after the reload: %v", host, port, err)
				}
			}
			if logs := s.logs.String(); strings.Contains(logs, "another process") {
				t.Errorf("the log blames another process:\n%s", logs)
			}
			l.waitExchanges(500)
			l.requireNoFailures()
		})
	}
}

// listenYAML is a config file's listen list.
func listenYAML(addrs []string) string {
	var b strings.Builder
	b.WriteString("listen:\n")
	for _, a := range addrs {
		fmt.Fprintf(&b, "  - %q\n", a)
	}
	return b.String()
}

// TestSameAddressTwoForms: `check` refuses what `serve` refuses, with the
// same line: ":P" and "[::]:P" are one address. Two different addresses on
// one port (":P" and "127.0.0.2:P") pass both and are served. (0.3.0:
// check said "configuration OK" to the first, and serve refused both,
// blaming another process.)
func TestSameAddressTwoForms(t *testing.T) {
	port := lancelottest.FreePort(t)
	same := []string{"--listen", fmt.Sprintf(":%d", port), "--listen", fmt.Sprintf("[::]:%d", port)}
	check := runCLI(t, 10*time.Second, append([]string{"check"}, same...)...)
	serve := runCLI(t, 10*time.Second, append([]string{"serve", "--workers", "1"}, same...)...)
	want := fmt.Sprintf(`--listen "[::]:%d": the same address as ":%d"`, port, port)
	for _, r := range []struct {
		cmd string
		res cliResult
	}{{"check", check}, {"serve", serve}} {
		if r.res.code != 1 || !strings.Contains(r.res.stderr, want) || strings.Count(strings.TrimSpace(r.res.stderr), "\n") != 0 {
			t.Errorf("%s %v: exit %d, stderr %q; want exit 1 and one line with %q", r.cmd, same, r.res.code, r.res.stderr, want)
		}
	}
	two := []string{fmt.Sprintf(":%d", port), fmt.Sprintf("127.0.0.2:%d", port)}
	if r := runCLI(t, 10*time.Second, "check", "--listen", two[0], "--listen", two[1]); r.code != 0 {
		t.Errorf("check %v: exit %d, %q", two, r.code, r.stderr)
	}
	s := startOn(t, two, "--workers", "2")
	st := s.waitQuiet()
	if n := socketsByAddr(st); len(n) != 2 {
		t.Errorf("serve %v: sockets by address %v, want 2 addresses", two, n)
	}
	for _, host := range []string{"127.0.0.1", "127.0.0.2"} {
		if err := answers(fmt.Sprintf("%s:%d", host, port)); err != nil {
			t.Errorf("%s:%d: %v", host, port, err)
		}
	}
}
