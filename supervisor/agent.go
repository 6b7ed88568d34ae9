package supervisor

import (
	"errors"
	"net"
	"time"
)

// agentReply is the HAProxy agent-check answer for a state: "ready" (not
// "up") clears a drain HAProxy is in, and "up 100%" restores full weight.
func agentReply(a AgentState) string {
	switch a {
	case AgentReady:
		return "ready up 100%\n"
	case AgentDrain:
		return "drain\n"
	}
	return "down\n"
}

// ServeAgent answers HAProxy agent checks on ln until ln is closed: one
// line per connection, the supervisor's state (Agent), then close. It
// never reads, so a client cannot make it wait.
func (s *Supervisor) ServeAgent(ln net.Listener) error {
	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of descriptors and the like: wait, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("agent port: accept error; retrying", "err", err, "in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		conn.SetWriteDeadline(time.Now().Add(time.Second))
		conn.Write([]byte(agentReply(s.Agent())))
		conn.Close()
	}
}
