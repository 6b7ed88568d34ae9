package main

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/camelot/lancelot/shared/lancelottest"
)

// inNetns runs argv in pid's network namespace, for at most timeout, and
// returns its output.
func inNetns(pid int, timeout time.Duration, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	args := append([]string{"--net=/proc/" + strconv.Itoa(pid) + "/ns/net", "--"}, argv...)
	out, err := exec.CommandContext(ctx, "nsenter", args...).CombinedOutput()
	return string(out), err
}

// TestWildcardOnIPv6OnlyHost: on a host that binds IPv6 wildcards
// IPv6-only (net.ipv6.bindv6only=1, set in a network namespace the test
// makes), `--listen :PORT` still serves IPv4 and IPv6 clients: the
// go_reuseport IPv6 socket reads back IPV6_V6ONLY=1 there, so every slot
// gets an IPv4 socket beside it, on the same port. The metrics side port
// (`:PORT` too) answers on both families.
func TestWildcardOnIPv6OnlyHost(t *testing.T) {
	for _, tool := range []string{"unshare", "nsenter", "ip", "ss", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			skipOrFail(t, "%s not installed", tool)
		}
	}
	if out, err := exec.Command("unshare", "--net", "true").CombinedOutput(); err != nil {
		skipOrFail(t, "cannot make a network namespace: %v %s", err, out)
	}
	port, mport := lancelottest.FreePort(t), lancelottest.FreePort(t)
	wrapper := []string{"unshare", "--net", "sh", "-c", `ip link set lo up && echo 1 >/proc/sys/net/ipv6/bindv6only && exec "$0" "$@"`}
	s := launchServerVia(t, wrapper, []string{"serve", "--workers", "2", "--listen", fmt.Sprintf(":%d", port),
		"--metrics", fmt.Sprintf(":%d", mport), "--pid-file", ""}, nil)
	s.waitReady()
	pid := s.cmd.Process.Pid
	if out, err := inNetns(pid, 5*time.Second, "cat", "/proc/sys/net/ipv6/bindv6only"); err != nil || strings.TrimSpace(out) != "1" {
		t.Fatalf("net.ipv6.bindv6only in the server's namespace: %q %v, want 1", out, err)
	}
	for _, host := range []string{"127.0.0.1", "::1"} {
		addr := fmt.Sprintf("[%s]:%d", host, port)
		out, err := inNetns(pid, 10*time.Second, binPath, "ask", "--server", addr, "--timeout", "5s", lancelottest.QName)
		if err != nil || strings.TrimSpace(out) != lancelottest.AName {
			t.Errorf("ask %s: %q, %v; want %q", addr, out, err, lancelottest.AName)
		}
		get := fmt.Sprintf(`exec 3<>/dev/tcp/%s/%d && printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && cat <&3`, host, mport)
		if out, err := inNetns(pid, 10*time.Second, "bash", "-c", get); err != nil || !strings.Contains(out, "lancelot_workers 2") {
			t.Errorf("metrics on %s port %d: %v, no `lancelot_workers 2` in %.300q", host, mport, err, out)
		}
	}
	out, err := inNetns(pid, 5*time.Second, "ss", "-Hltn", fmt.Sprintf("sport = :%d", port))
	if err != nil {
		t.Fatalf("ss: %v %s", err, out)
	}
	v4, v6 := strings.Count(out, fmt.Sprintf("0.0.0.0:%d", port)), strings.Count(out, fmt.Sprintf("[::]:%d", port))
	if v4 != 2 || v6 != 2 {
		t.Errorf("listening on port %d: %d IPv4 and %d IPv6 sockets, want 2 and 2 (one of each per worker):\n%s", port, v4, v6, out)
	}
}
