package main

// Life behind a load balancer: the agent port, the drain delay, the
// readiness probe and the PROXY protocol, against the real binary. The
// fleet tests (fleet_test.go) run the same behind a real HAProxy.

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camelot/lancelot/shared/lancelottest"
)

// agentSays reads the agent port's one-line answer.
func agentSays(t *testing.T, addr string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "dial: " + err.Error()
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	b, _ := io.ReadAll(conn)
	return string(b)
}

func healthzStatus(addr string) int {
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestDrainDelay: on TERM with --drain-delay the server keeps accepting
// and answering while the agent says drain and /healthz says 503, then
// stops as usual; the whole stop takes about the delay.
func TestDrainDelay(t *testing.T) {
	t.Parallel()
	agent := fmt.Sprintf("127.0.0.1:%d", lancelottest.FreePort(t))
	metrics := fmt.Sprintf("127.0.0.1:%d", lancelottest.FreePort(t))
	s := startServer(t, "--workers", "2", "--agent-listen", agent, "--metrics", metrics,
		"--drain-delay", "1500ms", "--shutdown-timeout", "1s")
	if got := agentSays(t, agent); got != "ready up 100%\n" {
		t.Fatalf("agent while serving = %q, want %q", got, "ready up 100%\n")
	}
	if code := healthzStatus(metrics); code != http.StatusOK {
		t.Fatalf("/healthz while serving = %d, want 200", code)
	}
	start := time.Now()
	s.signal(syscall.SIGTERM)
	lancelottest.WaitFor(t, 2*time.Second, "the agent to say drain", func() bool { return agentSays(t, agent) == "drain\n" })
	if code := healthzStatus(metrics); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz while draining = %d, want 503", code)
	}
	for i := 0; time.Since(start) < time.Second; i++ {
		if a, err := lancelottest.AskOnce(s.addr, lancelottest.QName, time.Second); err != nil || a != lancelottest.AName {
			t.Fatalf("new client %d during the drain delay: %q, %v; want it served", i, a, err)
		}
	}
	if err := s.wait(10 * time.Second); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if took := time.Since(start); took < 1500*time.Millisecond || took > 5*time.Second {
		t.Errorf("stop with a 1.5s drain delay took %v", took)
	}
}

// TestDrainDelayCutShort: a second TERM ends the 30 s delay, and QUIT
// skips what is left of it: either way the server stops within 10 s,
// with status 0 and nothing in its output but log records.
func TestDrainDelayCutShort(t *testing.T) {
	t.Parallel()
	for _, second := range []syscall.Signal{syscall.SIGTERM, syscall.SIGQUIT} {
		t.Run(second.String(), func(t *testing.T) {
			t.Parallel()
			agent := fmt.Sprintf("127.0.0.1:%d", lancelottest.FreePort(t))
			s := startServer(t, "--workers", "1", "--agent-listen", agent, "--drain-delay", "30s")
			s.signal(syscall.SIGTERM)
			lancelottest.WaitFor(t, 2*time.Second, "the agent to say drain", func() bool { return agentSays(t, agent) == "drain\n" })
			s.signal(second)
			if err := s.wait(10 * time.Second); err != nil {
				t.Fatalf("exit after TERM then %v: %v", second, err)
			}
			// Cut short and clean: no stack dump from a signal that came
			// while the processes were on their way out.
			checkLogRecords(t, s.logs.String())
			if logs := s.logs.String(); !strings.Contains(logs, `msg="supervisor stopped"`) {
				t.Errorf("no \"supervisor stopped\" in the log after TERM then %v", second)
			}
		})
	}
}

// TestProxyProtocolFlags: with --proxy-protocol, a trusted peer's header
// names the client in the log (client=, the peer as peer=), and a header
// missing from a trusted peer is refused and counted.
func TestProxyProtocolFlags(t *testing.T) {
	t.Parallel()
	metrics := fmt.Sprintf("127.0.0.1:%d", lancelottest.FreePort(t))
	s := startServer(t, "--workers", "1", "--metrics", metrics, "--log-level", "debug",
		"--proxy-protocol", "auto", "--proxy-allow-from", "127.0.0.2/32")
	conn, err := lancelottest.DialSource(s.addr, "127.0.0.2", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if a, err := lancelottest.AskOn(conn, "PROXY TCP4 192.0.2.7 198.51.100.1 40000 1060\r\n"+lancelottest.QName); err != nil || a != lancelottest.AName {
		t.Fatalf("question after a v1 header: %q, %v", a, err)
	}
	conn.Write([]byte("Who goes there?"))
	if err := lancelottest.ReadUntilClosed(conn, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	plain, err := lancelottest.DialSource(s.addr, "127.0.0.2", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	plain.Write([]byte(lancelottest.QName)) // a trusted peer must send the header first
	if err := lancelottest.ReadUntilClosed(plain, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if a, err := lancelottest.AskOnce(s.addr, lancelottest.QQuest, 2*time.Second); err != nil || a != lancelottest.AQuest {
		t.Errorf("untrusted client without a header: %q, %v; want it served", a, err)
	}
	lancelottest.WaitFor(t, 5*time.Second, "the missing header counted", func() bool {
		return metricValue(t, metrics, `lancelot_proxy_header_errors_total{reason="missing"}`) == 1
	})
	lancelottest.WaitFor(t, 5*time.Second, "the unknown question logged with the header's client", func() bool {
		for _, line := range strings.Split(s.logs.String(), "\n") {
			if strings.Contains(line, "closing connection: unknown") && strings.Contains(line, "client=192.0.2.7:40000") &&
				strings.Contains(line, "peer=127.0.0.2:") {
				return true
			}
		}
		return false
	})
}
