package main

import (
	"context"
	"errors"
	"net"
	"syscall"

	"github.com/camelot/lancelot/cmd/internal/loadgen"
)

// kindOf names the kind of a connection error, as the JSON reports it:
// loadgen's kinds, and a few more that tell this tool's own limits (out of
// ports or descriptors) from the server misbehaving, so that a run can be
// judged.
func kindOf(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no_port"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "no_fd"
	case errors.Is(err, net.ErrClosed), errors.Is(err, context.Canceled):
		return "closed"
	}
	return string(loadgen.Classify(err))
}

// dialer opens the share's attack connections from 127.0.0.2 onwards
// (127.0.0.1 is left to the good client).
func (sh share) dialer() loadgen.Dialer {
	cfg := sh.Config
	return loadgen.Dialer{Server: cfg.Server, Sources: attackSources(sh.Sources),
		Timeout: cfg.DialTimeout, SockBuf: cfg.SockBuf}
}

// attackSources are the source addresses of an attack over n of them:
// 127.0.0.2 onwards.
func attackSources(n int) loadgen.Sources {
	return loadgen.Sources{First: 2, N: n}
}
