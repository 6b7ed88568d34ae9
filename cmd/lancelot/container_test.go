package main

// The image docs/container/build.sh builds, run by a real docker daemon
// (Debian's docker.io; .ci/run starts one with no container network, see
// .ci/dockerd). Every container uses the host's network and listens on
// 127.0.0.1 only. LANCELOT_TEST_BIN, when set, goes into the image
// instead of a build of this tree (it must be static: CGO_ENABLED=0).

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/camelot/lancelot/cmd/internal/proc"
	"github.com/camelot/lancelot/shared/lancelottest"
)

// containerShutdownTimeout is the container's --shutdown-timeout, the
// bound `docker stop` must finish within.
const containerShutdownTimeout = 10 * time.Second

// TestContainer runs the image as a user would, and checks each promise
// of docs/operations.md's "Containers" in turn on one container.
func TestContainer(t *testing.T) {
	skipIfShort(t)
	d := requireDocker(t)
	image := d.buildImage()
	c := d.run(image, "--cpus", "1")
	if !c.answers() {
		t.Fatalf("no answer on %s", c.addr)
	}
	if n := len(proc.Children(c.supervisor())); n != 1 {
		t.Errorf("%d workers under --cpus 1, want 1", n)
	}
	for _, pid := range append([]int{c.init}, proc.Children(c.init)...) {
		if uid := processUID(t, pid); uid == 0 {
			t.Errorf("process %d %q runs as root", pid, proc.Cmdline(pid))
		}
	}
	c.waitHealthy()
	containerHUP(t, c)
	containerUSR2(t, c)
	if out := d.cmd("exec", c.id, "/lancelot", "healthcheck"); !strings.Contains(out, "answered") {
		t.Errorf("healthcheck after USR2 said %q", out)
	}
	containerStop(t, c)
}

// containerHUP: a HUP under load replaces the worker and fails nobody.
func containerHUP(t *testing.T, c *dockerContainer) {
	sup := c.supervisor()
	before := proc.Children(sup)
	l := startLoad(t, c.addr, 4, 4)
	l.waitExchanges(300)
	c.d.cmd("kill", "-s", "HUP", c.id)
	// The replaced worker may drain for a while: wait for the rollout,
	// not for its exit.
	lancelottest.WaitFor(t, 20*time.Second, "the reload's rollout complete, a new worker", func() bool {
		return strings.Contains(c.d.cmd("logs", c.id), `msg="rollout complete" rollout=reload`) &&
			slices.ContainsFunc(proc.Children(sup), func(pid int) bool { return !slices.Contains(before, pid) })
	})
	l.waitExchanges(300)
	l.requireNoFailures()
}

// containerUSR2: a USR2 under load fails nobody, and the container runs on
// with the new supervisor serving once the old one has exited.
func containerUSR2(t *testing.T, c *dockerContainer) {
	old := c.supervisor()
	l := startLoad(t, c.addr, 4, 4)
	l.waitExchanges(300)
	c.d.cmd("kill", "-s", "USR2", c.id)
	var sup int
	lancelottest.WaitFor(t, 20*time.Second, "a new supervisor, main (MAINPID=) and serving", func() bool {
		sup = c.newSupervisor(old)
		return sup != 0 && len(proc.Children(sup)) == 1 &&
			strings.Contains(c.d.cmd("logs", c.id), "init: main supervisor changed")
	})
	l.waitExchanges(300)
	res := l.stop()
	l.requireNoFailures()
	lancelottest.WaitFor(t, containerShutdownTimeout+5*time.Second, "the old supervisor exited", func() bool { return !proc.Exists(old) })
	state := c.d.cmd("inspect", "--format", "{{.State.Status}}", c.id)
	t.Logf("USR2 in a container: %d exchanges, failures %v, container %s after, supervisor %d -> %d",
		res.Exchanges, l.failures(), state, old, sup)
	if state != "running" {
		t.Fatalf("container %s after USR2, want running", state)
	}
	if !c.answers() || c.supervisor() != sup {
		t.Errorf("after USR2: answers %v, supervisor %d, want the new one %d serving", c.answers(), c.supervisor(), sup)
	}
}

// containerStop: docker stop (TERM) ends the container with status 0
// within --shutdown-timeout.
func containerStop(t *testing.T, c *dockerContainer) {
	start := time.Now()
	c.d.cmd("stop", "--time", strconv.Itoa(int(2*containerShutdownTimeout/time.Second)), c.id)
	took := time.Since(start)
	code := c.d.cmd("inspect", "--format", "{{.State.ExitCode}}", c.id)
	t.Logf("docker stop: %v, exit code %s", took, code)
	if code != "0" {
		t.Errorf("exit code %s after docker stop, want 0", code)
	}
	if took > containerShutdownTimeout {
		t.Errorf("docker stop took %v, more than --shutdown-timeout %v", took, containerShutdownTimeout)
	}
}

// docker is a reachable docker daemon and its client.
type docker struct {
	t      *testing.T
	client string
}

// requireDocker finds Debian's docker client (/usr/bin/docker: a newer
// client elsewhere on PATH may speak an API the daemon lacks) and a daemon
// it reaches (DOCKER_HOST); it skips, or fails under
// LANCELOT_REQUIRE_TOOLS=1, without them.
func requireDocker(t *testing.T) *docker {
	t.Helper()
	client := "/usr/bin/docker"
	if _, err := os.Stat(client); err != nil {
		client = requireTool(t, "docker")
	}
	out, err := exec.Command(client, "version", "--format", "{{.Server.Version}}").CombinedOutput()
	if err != nil {
		skipOrFail(t, "no docker daemon (start one as .ci/dockerd does): %v: %s", err, out)
	}
	return &docker{t: t, client: client}
}

// cmd runs the docker client and returns its trimmed output; the test
// fails if it fails.
func (d *docker) cmd(args ...string) string {
	d.t.Helper()
	out, err := exec.Command(d.client, args...).CombinedOutput()
	if err != nil {
		d.t.Fatalf("docker %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// buildImage builds the image with docs/container/build.sh under a tag of
// this test's own, removed when the test ends.
func (d *docker) buildImage() string {
	d.t.Helper()
	tag := fmt.Sprintf("lancelot-test:%d-%d", os.Getpid(), time.Now().UnixNano())
	build := exec.Command(filepath.Join("..", "..", "docs", "container", "build.sh"), tag)
	build.Env = append(os.Environ(), "DOCKER="+d.client)
	if os.Getenv("LANCELOT_TEST_BIN") != "" {
		build.Env = append(build.Env, "BINARY="+binPath)
	}
	d.t.Cleanup(func() { exec.Command(d.client, "rmi", "--force", tag).Run() })
	out, err := build.CombinedOutput()
	if err != nil {
		d.t.Fatalf("build.sh: %v: %s", err, out)
	}
	d.t.Logf("image: %s", strings.TrimSpace(string(out)))
	return tag
}

// dockerContainer is one running container of the image.
type dockerContainer struct {
	d    *docker
	id   string
	addr string // 127.0.0.1:port, on the host's network
	init int    // its PID 1, as the host sees it
}

// run starts a container of image serving on a free port of 127.0.0.1,
// with the host's network and the extra docker run flags; it is removed
// when the test ends. The health check runs every second (the image's
// command, a shorter interval).
func (d *docker) run(image string, flags ...string) *dockerContainer {
	d.t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", lancelottest.FreePort(d.t))
	args := append([]string{"run", "--detach", "--network", "host", "--health-interval", "1s"}, flags...)
	args = append(args, image, "serve", "--listen", addr,
		"--shutdown-timeout", containerShutdownTimeout.String())
	c := &dockerContainer{d: d, id: d.cmd(args...), addr: addr}
	d.t.Cleanup(func() {
		if d.t.Failed() {
			out, _ := exec.Command(d.client, "logs", c.id).CombinedOutput()
			d.t.Logf("container logs:\n%s", out)
		}
		exec.Command(d.client, "rm", "--force", "--volumes", c.id).Run()
	})
	c.init, _ = strconv.Atoi(d.cmd("inspect", "--format", "{{.State.Pid}}", c.id))
	lancelottest.WaitFor(d.t, 20*time.Second, "the container answers", c.answers)
	return c
}

// answers reports whether the container answers a question.
func (c *dockerContainer) answers() bool {
	a, err := lancelottest.AskOnce(c.addr, lancelottest.QName, 2*time.Second)
	return err == nil && a == lancelottest.AName
}

// supervisor is the one supervisor, PID 1's child; the test fails unless
// there is exactly one.
func (c *dockerContainer) supervisor() int {
	c.d.t.Helper()
	sups := c.supervisors()
	if len(sups) != 1 {
		c.d.t.Fatalf("PID 1 (%d) has supervisors %v, want one", c.init, sups)
	}
	return sups[0]
}

// newSupervisor is a supervisor other than old, or 0.
func (c *dockerContainer) newSupervisor(old int) int {
	for _, pid := range c.supervisors() {
		if pid != old {
			return pid
		}
	}
	return 0
}

// supervisors are PID 1's live children that run serve.
func (c *dockerContainer) supervisors() []int {
	var out []int
	for _, pid := range proc.Children(c.init) {
		if proc.Alive(pid) && slices.Contains(proc.Cmdline(pid), "serve") {
			out = append(out, pid)
		}
	}
	return out
}

// waitHealthy waits for docker to report the container healthy.
func (c *dockerContainer) waitHealthy() {
	c.d.t.Helper()
	var status string
	ok := lancelottest.Poll(20*time.Second, func() bool {
		status = c.d.cmd("inspect", "--format", "{{.State.Health.Status}}", c.id)
		return status == "healthy"
	})
	if !ok {
		c.d.t.Fatalf("health %q, want healthy: %s", status, c.d.cmd("inspect", "--format", "{{json .State.Health}}", c.id))
	}
}

// processUID is pid's real uid, from /proc.
func processUID(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" {
			uid, _ := strconv.Atoi(f[1])
			return uid
		}
	}
	t.Fatalf("no Uid in /proc/%d/status", pid)
	return 0
}
