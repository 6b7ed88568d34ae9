package supervisor

import (
	"maps"
	"os"
	"slices"

	"github.com/camelot/lancelot/shared/version"
)

// Status is the supervisor's state, as `lancelot status` shows it.
type Status struct {
	PID int `json:"pid"`
	// Version is the supervisor's build.
	Version version.Info `json:"version"`
	// State is starting, taking-over (a successor waiting for its
	// predecessor's verdict), serving, draining (lame duck), stopping or
	// handed-over.
	State string `json:"state"`
	// Running is the worker count the signals asked for; Configured is
	// what the configuration says.
	Running    int            `json:"running"`
	Configured int            `json:"configured"`
	Rollout    string         `json:"rollout,omitempty"`   // the rollout in flight
	Queued     int            `json:"queued"`              // requests waiting for it
	Upgrade    bool           `json:"upgrade"`             // a binary upgrade in flight
	Successor  int            `json:"successor,omitempty"` // its new supervisor's pid, once known
	Slots      []SlotStatus   `json:"slots"`
	Sockets    []SocketStatus `json:"sockets"`
	// Retiring are the pids of workers draining or being killed.
	Retiring []int `json:"retiring"`
	// Signals counts the signals received, by name (HUP, TTIN, ...), and
	// reloads asked for over the admin socket as "reload".
	Signals map[string]uint64 `json:"signals"`
	// Restarts counts workers restarted after an unexpected exit.
	Restarts uint64 `json:"restarts"`
}

// SlotStatus is one slot.
type SlotStatus struct {
	Slot    int    `json:"slot"`
	PID     int    `json:"pid,omitempty"`     // 0 while restarting
	Ready   bool   `json:"ready"`             // accepting on its sockets
	Version string `json:"version,omitempty"` // the worker's release, once ready
	Next    int    `json:"next,omitempty"`    // a replacement starting
	Home    []int  `json:"home"`              // the sockets it starts with
	Serving []int  `json:"serving"`           // the sockets it accepts on now
}

// SocketStatus is one listening socket.
type SocketStatus struct {
	ID       int    `json:"id"`
	Addr     string `json:"addr"`
	ServedBy []int  `json:"served_by"` // pids of the workers accepting on it
	// Retiring: its address was removed by a reload; it closes once a
	// worker has taken the clients queued on it.
	Retiring bool `json:"retiring,omitempty"`
}

// Quiet reports whether nothing is changing: serving, no rollout, upgrade
// or drain in flight, every slot's worker ready, the slots as many as the
// running count.
func (st Status) Quiet() bool {
	if st.State != "serving" || st.Rollout != "" || st.Queued > 0 || st.Upgrade || len(st.Retiring) > 0 || len(st.Slots) != st.Running {
		return false
	}
	for _, sl := range st.Slots {
		if !sl.Ready || sl.Next != 0 {
			return false
		}
	}
	return true
}

// Status returns the state as of the last event the loop handled.
func (s *Supervisor) Status() Status {
	s.metrics.mu.Lock()
	defer s.metrics.mu.Unlock()
	return s.metrics.status
}

// status computes the Status; the loop publishes it after every event.
func (s *Supervisor) status() Status {
	st := Status{PID: os.Getpid(), Version: version.Get(), State: s.stateName(), Running: s.running, Configured: s.cfg.Workers,
		Queued: len(s.requests), Upgrade: s.upgrade != nil, Retiring: []int{}, Signals: maps.Clone(s.received)}
	if s.rollout != nil {
		st.Rollout = s.rollout.name
	}
	if s.upgrade != nil {
		st.Successor = s.upgrade.proc.pid()
	}
	servedBy := make(map[int][]int, len(s.sockets))
	for _, sl := range s.slots {
		ss := SlotStatus{Slot: sl.index, Home: slices.Clone(sl.home), Serving: []int{}}
		if w := sl.cur; w != nil {
			ss.PID, ss.Ready, ss.Version = w.proc.pid(), w.healthy(), w.version
			for _, k := range slices.Sorted(maps.Keys(w.serving)) {
				ss.Serving = append(ss.Serving, k)
				if w.healthy() {
					servedBy[k] = append(servedBy[k], w.proc.pid())
				}
			}
		}
		if sl.next != nil {
			ss.Next = sl.next.proc.pid()
		}
		st.Slots = append(st.Slots, ss)
	}
	for _, sock := range s.sockets {
		st.Sockets = append(st.Sockets, SocketStatus{ID: sock.id, Addr: sock.addr, ServedBy: append([]int{}, servedBy[sock.id]...), Retiring: sock.retiring})
	}
	for _, w := range s.liveWorkers() {
		if w.draining || w.killed {
			st.Retiring = append(st.Retiring, w.proc.pid())
		}
	}
	return st
}

func (s *Supervisor) stateName() string {
	switch {
	case s.handedOver:
		return "handed-over"
	case s.stopping != 0:
		return "stopping"
	case !s.lameDuckUntil.IsZero():
		return "draining"
	case s.awaitingVerdict:
		return "taking-over"
	case !s.ready:
		return "starting"
	}
	return "serving"
}
