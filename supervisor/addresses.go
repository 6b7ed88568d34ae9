package supervisor

import (
	"fmt"
	"net"
	"slices"

	"github.com/camelot/lancelot/shared/control"
)

// Addresses. Each listening address has one socket per worker slot (fewer
// when its sockets cannot be joined: socket activation as another user),
// and every socket belongs to the address it is bound to: getsockname's
// answer, which is what an inherited socket tells of itself too.

// addrGroups returns the sockets' ids by address, addresses in the order
// their first socket was opened.
func (s *Supervisor) addrGroups() (addrs []string, ids map[string][]int) {
	ids = make(map[string][]int)
	for _, sock := range s.sockets {
		if sock.retiring {
			continue
		}
		if _, seen := ids[sock.addr]; !seen {
			addrs = append(addrs, sock.addr)
		}
		ids[sock.addr] = append(ids[sock.addr], sock.id)
	}
	return addrs, ids
}

// listenAddrs are the addresses the sockets are bound to, each once.
func (s *Supervisor) listenAddrs() []string {
	addrs, _ := s.addrGroups()
	return addrs
}

// socket returns the socket with id k, or nil.
func (s *Supervisor) socket(k int) *socket {
	for _, sock := range s.sockets {
		if sock.id == k {
			return sock
		}
	}
	return nil
}

// addSocket gives sock the next id: ids are never reused, so a worker
// never confuses a socket with one removed before it.
func (s *Supervisor) addSocket(sock *socket) {
	sock.id = s.nextSocketID
	s.nextSocketID++
	s.sockets = append(s.sockets, sock)
}

// bindAddress opens n sockets on the configured address listen, each on
// the port the first one got (HOST:0), after the one-instance check.
func (s *Supervisor) bindAddress(listen string, n int) ([]*socket, error) {
	if err := s.env.checkFree(listen, s.ownInodes()); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", listen, err)
	}
	var socks []*socket
	addr := listen
	for i := range n {
		more, err := s.env.bind(addr)
		if err != nil {
			for _, sock := range socks {
				sock.close()
			}
			return nil, fmt.Errorf("listen on %s (slot %d): %w", listen, i, err)
		}
		socks = append(socks, more...)
		addr = portOf(listen, more[0].addr)
	}
	return socks, nil
}

// portOf is listen with the port bound, so that every slot's socket of a
// HOST:0 address joins the first one's port.
func portOf(listen, bound string) string {
	host, _, err := net.SplitHostPort(listen)
	_, port, err2 := net.SplitHostPort(bound)
	if err != nil || err2 != nil {
		return listen
	}
	return net.JoinHostPort(host, port)
}

// matches reports whether the socket address bound was opened for the
// configured address listen: the same address once resolved, a wildcard
// for ":PORT", any port for "HOST:0".
func matches(listen, bound string) bool {
	want, err := net.ResolveTCPAddr("tcp", listen)
	if err != nil {
		return false
	}
	got, err := net.ResolveTCPAddr("tcp", bound)
	if err != nil {
		return false
	}
	if want.Port != 0 && want.Port != got.Port {
		return false
	}
	if want.IP == nil || want.IP.IsUnspecified() && want.IP.To4() == nil {
		return got.IP.IsUnspecified() // ":PORT" and "[::]:PORT" bind a wildcard (or IPv4's, without IPv6)
	}
	return want.IP.Equal(got.IP)
}

// diffAddrs compares the configured addresses with the sockets': those to
// open, and the bound addresses to close.
func (s *Supervisor) diffAddrs(listen []string) (add, remove []string) {
	bound := s.listenAddrs()
	for _, l := range listen {
		if !slices.ContainsFunc(bound, func(b string) bool { return matches(l, b) }) {
			add = append(add, l)
		}
	}
	for _, b := range bound {
		if !slices.ContainsFunc(listen, func(l string) bool { return matches(l, b) }) {
			remove = append(remove, b)
		}
	}
	return add, remove
}

// applyListen makes the sockets serve the addresses listen, for a reload:
// it opens the new addresses first (a failure leaves everything as it was),
// then retires the dropped ones (see retireSocket). New sockets are lent
// to the serving workers at once by reconcile, and are home to the
// workers the reload starts.
func (s *Supervisor) applyListen(listen []string) error {
	add, remove := s.diffAddrs(listen)
	if len(add) == 0 && len(remove) == 0 {
		return nil
	}
	var opened [][]*socket
	for _, l := range add {
		socks, err := s.bindAddress(l, max(1, len(s.slots)))
		if err != nil {
			for _, socks := range opened {
				for _, sock := range socks {
					sock.close()
				}
			}
			return err
		}
		opened = append(opened, socks)
	}
	for i, socks := range opened {
		for _, sock := range socks {
			s.addSocket(sock)
		}
		s.log.Info("reload: listening on a new address", "listen", add[i], "addr", socks[0].addr, "sockets", len(socks))
	}
	for _, addr := range remove {
		for _, sock := range s.sockets {
			if sock.addr == addr {
				sock.retiring = true
			}
		}
		s.log.Info("reload: stopping listening on an address, once its queued clients are taken", "addr", addr)
	}
	s.rehome()
	return nil
}

// retireSocket closes a socket whose address was dropped without resetting its
// queued clients (see reconcile): every healthy worker that accepts on it
// is told to accept what is queued, serve it, and close its copy
// (control.TypeRetire); the supervisor closes its own at once, so the last
// copy to close is a worker's, right after its last accept. With no
// healthy worker on it, it is lent to one first; with none at all, it
// waits. It reports false when a worker was written off on the way.
func (s *Supervisor) retireSocket(sock *socket) bool {
	k := sock.id
	if !s.servedByAccepting(k) {
		w := s.leastLoaded()
		if w == nil {
			return true // nobody can take its queue yet
		}
		switch s.lend(w, k, lendRetired) {
		case lendLost:
			return false
		case lendFailed:
			return true // closing now would reset its queue: the next event tries again
		}
	}
	for w := range s.workers {
		if !w.serving[k] {
			continue
		}
		delete(w.serving, k)
		if w.killed || w.draining {
			continue // it lets go of every socket anyway, after a sweep
		}
		if err := w.proc.send(control.Message{Type: control.TypeRetire, Socket: k}); err != nil {
			s.lost(w, err)
			return false
		}
	}
	sock.close()
	s.sockets = slices.DeleteFunc(s.sockets, func(x *socket) bool { return x == sock })
	s.log.Info("socket closed: its address was removed", "socket", k, "addr", sock.addr)
	return true
}
