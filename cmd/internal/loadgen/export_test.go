package loadgen

// Hooks for the external tests (package loadgen_test): the errors Start
// returns, and the knobs that reach the package's limits with a small load.

var (
	ErrNotLoopback        = errNotLoopback
	ErrUnreachable        = errUnreachable
	ErrTooManyConnections = errTooManyConnections
)

// WithPerProcess returns cfg with at most n connections per process.
func WithPerProcess(cfg Config, n int) Config {
	cfg.perProcess = n
	return cfg
}

// WithPerSource returns cfg with at most n connections per source address.
func WithPerSource(cfg Config, n int) Config {
	cfg.perSource = n
	return cfg
}

// WithConnExchanges returns cfg with persistent connections that reconnect
// after n answers.
func WithConnExchanges(cfg Config, n int) Config {
	cfg.connExchanges = n
	return cfg
}
