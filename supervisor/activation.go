package supervisor

import (
	"os"
	"slices"
)

// Socket activation. The sockets systemd passed, to this supervisor or to
// any predecessor (the handoff says which, see handoff.Upgrade.Activated),
// belong to the socket unit: a reload neither binds nor retires an address
// while any socket is systemd's, and every successor learns the same.

// inherited returns the sockets this supervisor starts with and, for each,
// whether it is systemd's.
func (s *Supervisor) inherited() ([]*os.File, []bool) {
	if u := s.opts.Upgrade; u != nil {
		activated := make([]bool, len(u.Sockets))
		copy(activated, u.Activated)
		return u.Sockets, activated
	}
	activated := make([]bool, len(s.opts.Activated))
	for i := range activated {
		activated[i] = true
	}
	return s.opts.Activated, activated
}

// noteActivation logs, once at start, that the addresses are the socket
// unit's, and how this supervisor knows.
func (s *Supervisor) noteActivation() {
	if !s.socketActivated() {
		return
	}
	how := "systemd passed them (LISTEN_FDS)"
	if u := s.opts.Upgrade; u != nil {
		how = u.ActivatedHow
	}
	s.log.Info("socket activation: the listening addresses belong to the socket unit; reloads keep them",
		"listen", s.listenAddrs(), "how", how)
}

// socketActivated reports whether any socket is systemd's.
func (s *Supervisor) socketActivated() bool {
	return slices.ContainsFunc(s.sockets, func(sock *socket) bool { return sock.activated })
}

// addrActivated reports whether addr is a socket unit's address: a socket
// this supervisor added to it (a slot's own) is the unit's too.
func (s *Supervisor) addrActivated(addr string) bool {
	return slices.ContainsFunc(s.sockets, func(sock *socket) bool { return sock.activated && sock.addr == addr })
}

// keepActivatedAddrs is a reload's address step for a socket-activated
// service: nothing is bound or retired; one line says so when the
// configuration lists other addresses.
func (s *Supervisor) keepActivatedAddrs(listen []string) {
	if add, remove := s.diffAddrs(listen); len(add)+len(remove) > 0 {
		s.log.Warn("reload: the listening addresses belong to the socket unit (socket activation); "+
			"change its ListenStream= lines instead of the listen setting",
			"listening", s.listenAddrs(), "configured", listen)
	}
}
