package control

import "maps"

// Stats are a worker's counters since it started. The maps are keyed by
// reason (a metric label); a nil map counts nothing.
type Stats struct {
	Answered uint64 `json:"answered"`
	Unknown  uint64 `json:"unknown"`
	Accepted uint64 `json:"accepted"`
	Active   int64  `json:"active"`
	// Closed counts connections the server closed, by reason: unknown,
	// oversize, non_ascii, read_timeout, idle_timeout, write_timeout, shed,
	// limit, proxy.
	Closed map[string]uint64 `json:"closed,omitempty"`
	// ProxyErrors counts refused PROXY protocol headers, by reason.
	ProxyErrors map[string]uint64 `json:"proxy_errors,omitempty"`
	// HandedOver counts the connections this worker handed to another, by
	// reason (reload, upgrade, scale_down, rebalance); HandoverFailures,
	// those lost in a handover that failed (closed); HandoverRefused,
	// those a receiver refused (over its limits), served on here.
	HandedOver       map[string]uint64 `json:"handed_over,omitempty"`
	HandoverFailures uint64            `json:"handover_failures,omitempty"`
	HandoverRefused  uint64            `json:"handover_refused,omitempty"`
	// LogDropped counts log lines dropped because the log's reader was too
	// slow.
	LogDropped uint64 `json:"log_dropped,omitempty"`
}

// Add returns the sum of s and o; it shares no map with either.
func (s Stats) Add(o Stats) Stats {
	return Stats{
		Answered:    s.Answered + o.Answered,
		Unknown:     s.Unknown + o.Unknown,
		Accepted:    s.Accepted + o.Accepted,
		Active:      s.Active + o.Active,
		Closed:      addCounts(s.Closed, o.Closed),
		ProxyErrors: addCounts(s.ProxyErrors, o.ProxyErrors),
		LogDropped:  s.LogDropped + o.LogDropped,

		HandedOver:       addCounts(s.HandedOver, o.HandedOver),
		HandoverFailures: s.HandoverFailures + o.HandoverFailures,
		HandoverRefused:  s.HandoverRefused + o.HandoverRefused,
	}
}

func addCounts(a, b map[string]uint64) map[string]uint64 {
	if len(a) == 0 && len(b) == 0 {
		return nil
	}
	out := maps.Clone(a)
	if out == nil {
		out = make(map[string]uint64, len(b))
	}
	for k, v := range b {
		out[k] += v
	}
	return out
}
