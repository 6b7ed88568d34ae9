package supervisor

import (
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// starveDescriptors lowers this process's soft RLIMIT_NOFILE to its lowest
// free descriptor, or to below if lower (descriptors closed later are then
// no use either), so that any new descriptor fails with EMFILE, until the
// returned func restores it.
func starveDescriptors(t *testing.T, below int) (restore func()) {
	t.Helper()
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	free, err := unix.FcntlInt(0, unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(free)
	low := orig
	low.Cur = uint64(min(free, below))
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	done := false
	restore = func() {
		if !done {
			done = true
			syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig)
		}
	}
	t.Cleanup(restore)
	return restore
}

// TestRetireWithoutDescriptors: a removed address's socket whose worker
// is late, retired while the supervisor is out of descriptors (so it
// cannot lend the socket to another worker to take its queue), stays open
// until it can: closing it would reset the clients queued on it. Once
// descriptors are back, it is lent, retired and closed. (Before, lend
// reported success on EMFILE and the socket was closed at once.)
func TestRetireWithoutDescriptors(t *testing.T) {
	m := newFixedModel(t, 2, 10*time.Second)
	keep := m.s.cfg.Listen[0]
	if err := m.s.applyListen([]string{keep, "127.0.0.2:0"}); err != nil {
		t.Fatal(err)
	}
	m.s.cfg.Listen = []string{keep, "127.0.0.2:0"}
	for _, f := range m.fakes {
		f.ready = true
		m.s.handle(event{kind: eventReady, worker: f.w})
		m.s.settle()
	}
	m.tick(time.Second)
	good, stopped := m.fakes[0], m.fakes[1]
	var gone *socket
	for _, k := range m.s.slots[1].home {
		if sock := m.s.socket(k); sock.addr != m.s.socket(m.s.slots[1].home[0]).addr || len(m.s.slots[1].home) == 1 {
			gone = sock
		}
	}
	if gone == nil || gone.addr == m.s.socket(m.s.slots[0].home[0]).addr {
		t.Fatalf("slot 1's sockets %v: want one on the second address", m.s.slots[1].home)
	}
	lowest := gone.fd
	for _, sock := range m.s.sockets {
		if sock.addr == gone.addr {
			lowest = min(lowest, sock.fd)
		}
	}
	restore := starveDescriptors(t, lowest)
	m.unchecked = true // sockets go unserved while lends fail
	stopped.hung, stopped.hungAt = true, m.now
	m.runUntil(2*time.Second, "slot 1's worker late", func() bool { return stopped.w.hb.late })
	if good.serving[gone.id] {
		t.Fatalf("socket %d lent though no descriptor was free", gone.id)
	}
	addrs, _ := m.s.addrGroups()
	var left []string
	for _, a := range addrs {
		if a != gone.addr {
			left = append(left, a)
		}
	}
	if err := m.s.applyListen(left); err != nil {
		t.Fatal(err)
	}
	m.s.cfg.Listen = []string{keep}
	m.s.settle()
	if gone.closed || m.s.socket(gone.id) == nil {
		t.Fatalf("retired socket %d (%s) closed while no worker could take its queue", gone.id, gone.addr)
	}
	restore()
	m.unchecked = false
	m.tick(10 * time.Millisecond)
	if !gone.closed || m.s.socket(gone.id) != nil {
		t.Errorf("retired socket %d still open once descriptors were back", gone.id)
	}
	if good.serving[gone.id] {
		t.Errorf("the accepting worker still serves retired socket %d", gone.id)
	}
	if n := m.s.metrics.lent[lendRetired]; n != 1 {
		t.Errorf("sockets lent to be retired = %d, want 1", n)
	}
}
