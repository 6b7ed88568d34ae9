// Package admin is the supervisor's local request channel, through which
// `lancelot reload` asks for a reload and `lancelot upgrade` for a binary
// upgrade, and waits for its outcome, as
// `systemctl reload` needs (a signal says nothing back). It is an abstract
// unix socket named after the supervisor's pid, so a successor after a
// binary upgrade has its own, and it leaves no file behind. Only the
// supervisor's own user and root may use it (SO_PEERCRED).
//
// The protocol is one line each way: the client sends a command ("reload",
// "upgrade", "status"), the supervisor answers "ok", "ok <payload>" or "error: reason"
// when it is done.
//
// Not a public API: this package serves the lancelot binary only.
package admin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Commands.
const (
	// CommandReload asks for a reload (what HUP does) and waits for it.
	CommandReload = "reload"
	// CommandStatus asks for the supervisor's state, as JSON.
	CommandStatus = "status"
	// CommandUpgrade asks for a binary upgrade (what USR2 does) and waits
	// until the successor took over; the payload is its pid.
	CommandUpgrade = "upgrade"
)

// Addr is the admin socket of the supervisor with the given pid.
func Addr(pid int) string {
	return "@lancelot-admin-" + strconv.Itoa(pid)
}

// Listen opens this process's admin socket.
func Listen() (net.Listener, error) {
	ln, err := net.Listen("unix", Addr(os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	return ln, nil
}

// Handler carries out one command; its result, or its error, is what the
// client is told. The result must fit on one line.
type Handler func(ctx context.Context, command string) (string, error)

// maxClients bounds the connections served at once: beyond it a client is
// closed at once, so the socket cannot be used to eat the supervisor's
// descriptors.
const maxClients = 16

// Serve answers the clients of ln (from Listen) until ln is closed: one
// command per connection, from this process's user or root only.
func Serve(ln net.Listener, handle Handler) error {
	slots := make(chan struct{}, maxClients)
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("admin socket: %w", err)
		}
		select {
		case slots <- struct{}{}:
			go func() {
				defer func() { <-slots }()
				serveConn(conn.(*net.UnixConn), handle)
			}()
		default:
			conn.Close()
		}
	}
}

// maxWait bounds a command; a reload is bounded well within it.
const maxWait = 10 * time.Minute

func serveConn(conn *net.UnixConn, handle Handler) {
	defer conn.Close()
	if err := checkPeer(conn); err != nil {
		fmt.Fprintf(conn, "error: %v\n", err)
		return
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), maxWait)
	defer cancel()
	result, err := handle(ctx, strings.TrimSpace(line))
	reply := strings.TrimRight("ok "+strings.ReplaceAll(result, "\n", " "), " ") + "\n"
	if err != nil {
		reply = "error: " + strings.ReplaceAll(err.Error(), "\n", " ") + "\n"
	}
	conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	conn.Write([]byte(reply))
}

// checkPeer lets in this process's user and root only: an abstract socket
// has no file permissions to do it.
func checkPeer(conn *net.UnixConn) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	raw.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	if cerr != nil {
		return cerr
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Geteuid() {
		return fmt.Errorf("uid %d may not use this socket", cred.Uid)
	}
	return nil
}

// ErrNoAdminSocket reports a supervisor that has no admin socket: not
// running, or a version from before it had one.
var ErrNoAdminSocket = errors.New("no admin socket")

// Do sends command to the supervisor pid and waits for its answer: the
// result, or the error it reported.
func Do(ctx context.Context, pid int, command string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", Addr(pid))
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNoAdminSocket, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if _, err := fmt.Fprintf(conn, "%s\n", command); err != nil {
		return "", fmt.Errorf("send %s: %w", command, err)
	}
	line, err := bufio.NewReader(io.LimitReader(conn, maxReply)).ReadString('\n')
	if err != nil {
		// The connection's deadline is ctx's: it may pass a moment
		// before ctx says so, and is a timeout all the same.
		if ctx.Err() != nil {
			return "", fmt.Errorf("%s: no answer: %w", command, ctx.Err())
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return "", fmt.Errorf("%s: no answer: %w", command, context.DeadlineExceeded)
		}
		return "", fmt.Errorf("%s: no answer (supervisor gone?): %w", command, err)
	}
	line = strings.TrimSuffix(line, "\n")
	if line == "ok" {
		return "", nil
	}
	if result, ok := strings.CutPrefix(line, "ok "); ok {
		return result, nil
	}
	return "", errors.New(strings.TrimPrefix(line, "error: "))
}

// maxReply bounds an answer; a status of a thousand workers fits.
const maxReply = 4 << 20
