package supervisor

import (
	"syscall"
	"testing"
	"time"
)

// TestAgentStates: the agent port says down until a worker is ready, ready
// while serving, drain from TERM (through the drain delay) until exit.
func TestAgentStates(t *testing.T) {
	m := newModel(t, 7)
	s := m.s
	s.cfg.DrainDelay = time.Second
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	defer func() { s.closeSockets() }()
	check := func(want AgentState, line string) {
		t.Helper()
		s.settle()
		if got := s.Agent(); got != want || agentReply(got) != line {
			t.Fatalf("agent = %v %q, want %v %q", got, agentReply(got), want, line)
		}
	}
	check(AgentDown, "down\n")
	for _, f := range m.fakes {
		f.ready = true
		s.handle(event{kind: eventReady, worker: f.w})
	}
	check(AgentReady, "ready up 100%\n")
	s.handleRequest(request{kind: requestSignal, sig: syscall.SIGTERM})
	check(AgentDrain, "drain\n")
	if s.stopping != 0 {
		t.Fatal("stopped at once despite the drain delay")
	}
	m.now = m.now.Add(time.Second)
	check(AgentDrain, "drain\n")
	if s.stopping != syscall.SIGTERM {
		t.Fatal("not stopping after the drain delay")
	}
}
