package main

import (
	"time"

	"github.com/camelot/lancelot/cmd/internal/loadgen"
)

// share is the part of an attack one child process runs.
type share struct {
	Config attackConfig `json:"config"`
	// First is the attack-wide index of the share's first slot, so that
	// slots of all processes together spread evenly over the sources.
	First int `json:"first"`
	// Slots are connections held, or concurrent clients (badq).
	Slots int `json:"slots"`
	// Quota is the connections a badq share makes (0: no limit).
	Quota int `json:"quota"`
	// Sources is the number of source addresses of the whole attack.
	Sources int `json:"sources"`
	// Until is when the share stops, whatever it is doing.
	Until time.Time `json:"until"`
}

// plan splits an attack into shares, one per child process, so that no
// process holds more than cfg.PerProcess connections.
func plan(cfg attackConfig, spec attackSpec, start time.Time) []share {
	slots, quota := cfg.Count, 0
	if spec.churn {
		slots, quota = cfg.Concurrency, cfg.Count
	}
	sources := cfg.Sources
	if sources == 0 {
		sources = loadgen.SourcesFor(slots, cfg.PerSource)
	}
	procs := ceilDiv(slots, cfg.PerProcess)
	slotShares, quotaShares := splitEven(slots, procs), splitEven(quota, procs)
	shares := make([]share, procs)
	first := 0
	for i := range shares {
		shares[i] = share{Config: cfg, First: first, Slots: slotShares[i], Quota: quotaShares[i],
			Sources: sources, Until: start.Add(cfg.Duration)}
		first += slotShares[i]
	}
	return shares
}

// splitEven splits n into parts that differ by at most one, larger first.
func splitEven(n, parts int) []int {
	out := make([]int, parts)
	for i := range out {
		out[i] = n / parts
		if i < n%parts {
			out[i]++
		}
	}
	return out
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
