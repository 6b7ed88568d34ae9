package supervisor

// assign decides which sockets each of nSlots slots serves. Slot i serves
// socket i; a socket beyond the last slot (left by TTOU, or passed by socket
// activation) is served by slot k mod nSlots; a slot beyond the last socket
// (more workers than activated sockets) shares socket i mod nSockets. Every
// socket gets a slot and every slot a socket.
func assign(nSockets, nSlots int) [][]int {
	out := make([][]int, nSlots)
	for i := range out {
		if i < nSockets {
			out[i] = []int{i}
		} else {
			out[i] = []int{i % nSockets}
		}
	}
	for k := nSlots; k < nSockets; k++ {
		out[k%nSlots] = append(out[k%nSlots], k)
	}
	return out
}
