package supervisor

import (
	"maps"
	"os"
	"slices"
	"time"

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
	// Started is when the supervisor started its workers; UptimeSeconds
	// is the time since, as of the call.
	Started       time.Time `json:"started"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	// ConfigFile is the file the settings were read from, if any.
	ConfigFile string `json:"config_file,omitempty"`
}

// SlotStatus is one slot.
type SlotStatus struct {
	Slot  int  `json:"slot"`
	PID   int  `json:"pid,omitempty"` // 0 while restarting
	Ready bool `json:"ready"`         // accepting on its sockets
	// State is ready, starting, restarting (no worker: it exited and its
	// replacement is not started yet), hung (missed its heartbeat, being
	// killed) or draining (the supervisor stops).
	State   string `json:"state"`
	Version string `json:"version,omitempty"` // the worker's release, once ready
	Next    int    `json:"next,omitempty"`    // a replacement starting
	Home    []int  `json:"home"`              // the sockets it starts with
	Serving []int  `json:"serving"`           // the sockets it accepts on now
	// Lent are the sockets it serves that are not its home: lent to it
	// while their own slot's worker is down.
	Lent []int `json:"lent"`
	// Restarts counts this slot's workers restarted after an unexpected
	// exit.
	Restarts uint64 `json:"restarts"`
	// Started is when the worker started; UptimeSeconds the time since.
	Started       time.Time `json:"started,omitzero"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	// The worker's counters, as of the last sample (every statsInterval):
	// Connections open, questions Answered in all, QuestionsPerSecond
	// between the last two samples, and connections HandedOver to a
	// successor worker.
	Connections        int64   `json:"connections"`
	Answered           uint64  `json:"answered"`
	QuestionsPerSecond float64 `json:"questions_per_second"`
	HandedOver         uint64  `json:"handed_over"`
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

// Status returns the state as of the last event the loop handled, with
// uptimes as of now and each worker's counters as of the last sample.
func (s *Supervisor) Status() Status {
	now := s.env.now()
	m := &s.metrics
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.status
	st.Slots = slices.Clone(st.Slots)
	st.Started = m.started
	st.UptimeSeconds = uptime(m.started, now)
	for i := range st.Slots {
		sl := &st.Slots[i]
		sl.Restarts = m.slotRestarts[sl.Slot]
		sl.UptimeSeconds = uptime(sl.Started, now)
		if i >= len(m.slotWorkers) || m.slotWorkers[i] == nil {
			continue
		}
		if smp, ok := m.samples[m.slotWorkers[i]]; ok {
			sl.Connections, sl.Answered, sl.QuestionsPerSecond = smp.stats.Active, smp.stats.Answered, smp.qps
			for _, n := range smp.stats.HandedOver {
				sl.HandedOver += n
			}
		}
	}
	return st
}

// uptime is the seconds from since to now, to the millisecond; zero if
// since is.
func uptime(since, now time.Time) float64 {
	if since.IsZero() {
		return 0
	}
	return now.Sub(since).Round(time.Millisecond).Seconds()
}

// status computes the Status; the loop publishes it after every event.
func (s *Supervisor) status() Status {
	st := Status{PID: os.Getpid(), Version: version.Get(), State: s.stateName(), Running: s.running, Configured: s.cfg.Workers,
		Queued: len(s.requests), Upgrade: s.upgrade != nil || s.awaitingRequests, Retiring: []int{}, Signals: maps.Clone(s.received),
		ConfigFile: s.cfg.ConfigFile}
	if s.rollout != nil {
		st.Rollout = s.rollout.name
	}
	if s.upgrade != nil {
		st.Successor = s.upgrade.proc.pid()
	}
	servedBy := make(map[int][]int, len(s.sockets))
	for _, sl := range s.slots {
		ss := SlotStatus{Slot: sl.index, State: slotState(sl.cur), Home: slices.Clone(sl.home), Serving: []int{}, Lent: []int{}}
		if w := sl.cur; w != nil {
			ss.PID, ss.Ready, ss.Version, ss.Started = w.proc.pid(), w.healthy(), w.version, w.started
			for _, k := range slices.Sorted(maps.Keys(w.serving)) {
				ss.Serving = append(ss.Serving, k)
				if !slices.Contains(sl.home, k) {
					ss.Lent = append(ss.Lent, k)
				}
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

// slotState names what a slot's worker w is doing.
func slotState(w *worker) string {
	switch {
	case w == nil:
		return "restarting"
	case w.killed:
		return "hung"
	case w.draining:
		return "draining"
	case !w.ready:
		return "starting"
	}
	return "ready"
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
