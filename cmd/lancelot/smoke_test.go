package main

import (
	"testing"

	"github.com/camelot/lancelot/shared/lancelottest"
)

func TestServeAnswersTheThreeQuestions(t *testing.T) {
	s := startServer(t, "--workers", "2")
	c := lancelottest.Dial(t, s.addr)
	for _, qa := range lancelottest.Exchanges() {
		c.Send(qa[0])
		c.Expect(qa[1])
	}
	if n := listeningSockets(t, s.port); n != 2 {
		t.Errorf("listening sockets on port %d = %d, want 2", s.port, n)
	}
}
