package main

import "testing"

func TestServeAnswersTheThreeQuestions(t *testing.T) {
	s := startServer(t, "--workers", "2")
	c := dial(t, s.addr)
	for _, qa := range [][2]string{{qName, aName}, {qQuest, aQuest}, {qColor, aColor}} {
		c.send(qa[0])
		c.expect(qa[1])
	}
	if n := listeningSockets(t, s.port); n != 2 {
		t.Errorf("listening sockets on port %d = %d, want 2", s.port, n)
	}
}
