package loadgen

import "time"

// ErrorKind names one way an exchange or a connection can fail.
type ErrorKind string

// The error kinds, as they appear in Result.Errors.
const (
	Refused ErrorKind = "refused" // connect refused
	Reset   ErrorKind = "reset"   // connection reset (or broken pipe) after an answer
	// ResetQueued is a reset before a connection's first answer: most
	// often a client still queued in a listening socket's backlog when
	// the socket closed, which a server's stop can legitimately cause.
	ResetQueued ErrorKind = "reset_queued"
	EOF         ErrorKind = "eof"          // closed before a whole answer came
	WrongAnswer ErrorKind = "wrong_answer" // a byte differed from the table's answer
	Timeout     ErrorKind = "timeout"      // no dial or answer within Config.Timeout
	Other       ErrorKind = "other"        // anything else (e.g. out of ports or fds)
)

// Kinds lists every ErrorKind in a fixed order.
func Kinds() []ErrorKind {
	return []ErrorKind{Refused, Reset, ResetQueued, EOF, WrongAnswer, Timeout, Other}
}

// Result is what a load measured. Its JSON form is docs/reference.md's
// `lancelot bench --json` object.
type Result struct {
	// Exchanges counts answers received and verified, setup included.
	Exchanges int64 `json:"exchanges"`
	// ExchangesPerS is the timed phase's exchanges per second.
	ExchangesPerS float64 `json:"exchanges_per_s"`
	// ConnectionsPerS is connections established per second: over the
	// timed phase, or in idle mode over the setup that opened them.
	ConnectionsPerS float64 `json:"connections_per_s"`
	// Latency summarizes the timed phase's exchanges (idle: the probes').
	Latency Latency `json:"latency_us"`
	// Errors counts failures by kind; every kind is present.
	Errors map[ErrorKind]int64 `json:"errors"`
	// Examples are the first few failures, "kind: error", for a message
	// that says more than a count.
	Examples []string `json:"-"`
	// IdleHeld is, in idle mode, the connections still open and unbroken
	// at the end of the timed phase.
	IdleHeld int64 `json:"idle_held,omitempty"`
	// Elapsed is the timed phase's length; Setup is the setup's.
	Elapsed time.Duration `json:"-"`
	Setup   time.Duration `json:"-"`
}

// Latency holds percentiles of exchange latency in microseconds.
type Latency struct {
	P50  int64 `json:"p50"`
	P90  int64 `json:"p90"`
	P99  int64 `json:"p99"`
	P999 int64 `json:"p999"`
	Max  int64 `json:"max"`
}

// ErrorCount is the number of failures of every kind.
func (r Result) ErrorCount() int64 {
	var n int64
	for _, c := range r.Errors {
		n += c
	}
	return n
}
