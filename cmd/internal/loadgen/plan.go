package loadgen

import (
	"fmt"
	"time"
)

// plan splits a load (with its defaults) into shares of at most perProcess
// connections each. The first share is this process's and carries idle
// mode's probes; the others go to children.
func plan(cfg Config, perProcess int) ([]share, error) {
	addr, err := LoopbackServer(cfg.Server)
	if err != nil {
		return nil, err
	}
	probes := 0
	if cfg.Mode == Idle {
		probes = cfg.Probes
	}
	total := cfg.Connections + probes
	base := share{Mode: cfg.Mode, Server: addr.String(), Pipeline: cfg.Pipeline,
		Timeout: cfg.Timeout, SetupTimeout: cfg.setupTimeout, ConnExchanges: cfg.connExchanges,
		Sources: sourcesFor(addr, total, cfg.perSource)}
	local := base
	local.Probes = probes
	local.Conns = min(cfg.Connections, max(perProcess-probes, 0))
	if local.Conns == cfg.Connections {
		return []share{local}, nil
	}
	if len(cfg.ChildArgs) == 0 {
		return nil, fmt.Errorf("%d connections, %d per process: %w", total, perProcess, errTooManyConnections)
	}
	return append([]share{local}, childShares(cfg, base, local.Conns, perProcess)...), nil
}

// childShares divides the connections from first on evenly among as few
// children as hold them.
func childShares(cfg Config, base share, first, perProcess int) []share {
	rest := cfg.Connections - first
	n := (rest + perProcess - 1) / perProcess
	if cfg.Duration > 0 {
		// A child outlives a lost parent by at most this much.
		base.Limit = cfg.setupTimeout + cfg.Duration + time.Minute
	}
	shares := make([]share, 0, n)
	for i := range n {
		sh := base
		sh.First = first
		sh.Conns = rest / n
		if i < rest%n {
			sh.Conns++
		}
		first += sh.Conns
		shares = append(shares, sh)
	}
	return shares
}
