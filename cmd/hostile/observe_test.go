package main

import "testing"

func TestSockstatTCPMem(t *testing.T) {
	text := "sockets: used 24\nTCP: inuse 3 orphan 5 tw 100043 alloc 107 mem 277\nUDP: inuse 0 mem 9\n"
	if got := sockstatTCPMem(text); got != 277 {
		t.Errorf("sockstatTCPMem = %d, want 277", got)
	}
	if got := sockstatTCPMem("garbage"); got != 0 {
		t.Errorf("sockstatTCPMem(garbage) = %d, want 0", got)
	}
}
