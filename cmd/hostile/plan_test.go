package main

import (
	"slices"
	"testing"
	"time"
)

func TestSplitEven(t *testing.T) {
	for _, tc := range []struct {
		n, parts int
		want     []int
	}{
		{45000, 3, []int{15000, 15000, 15000}},
		{10, 3, []int{4, 3, 3}},
		{2, 3, []int{1, 1, 0}},
		{0, 2, []int{0, 0}},
	} {
		if got := splitEven(tc.n, tc.parts); !slices.Equal(got, tc.want) {
			t.Errorf("splitEven(%d, %d) = %v, want %v", tc.n, tc.parts, got, tc.want)
		}
	}
}

// TestAttackSources checks that attacks leave 127.0.0.1 to the good client.
func TestAttackSources(t *testing.T) {
	for _, tc := range []struct {
		i, sources int
		want       string
	}{
		{0, 1, "127.0.0.2"},
		{7, 1, "127.0.0.2"},
		{7, 5, "127.0.0.4"},
		{253, 254, "127.0.0.255"},
		{3, 0, "127.0.0.2"},
	} {
		if got := attackSources(tc.sources).IP(tc.i).String(); got != tc.want {
			t.Errorf("attackSources(%d).IP(%d) = %s, want %s", tc.sources, tc.i, got, tc.want)
		}
	}
}

func TestPlanHeld(t *testing.T) {
	start := time.Unix(1000, 0)
	cfg := attackConfig{Mode: "silent", Count: 45000, Duration: 40 * time.Second, PerSource: 10000, PerProcess: 16000}
	spec, _ := lookupAttack("silent")
	shares := plan(cfg, spec, start)
	if len(shares) != 3 {
		t.Fatalf("plan(45000 per 16000) gave %d shares, want 3", len(shares))
	}
	first := 0
	for i, sh := range shares {
		if sh.Slots != 15000 || sh.First != first || sh.Sources != 5 || sh.Quota != 0 ||
			!sh.Until.Equal(start.Add(40*time.Second)) {
			t.Errorf("share %d = %+v", i, sh)
		}
		first += sh.Slots
	}
}

func TestPlanChurn(t *testing.T) {
	cfg := attackConfig{Mode: "badq", Count: 200001, Concurrency: 64, Sources: 8, Duration: time.Second,
		PerSource: 10000, PerProcess: 40}
	spec, _ := lookupAttack("badq")
	shares := plan(cfg, spec, time.Now())
	var slots, quota int
	for _, sh := range shares {
		slots += sh.Slots
		quota += sh.Quota
		if sh.Sources != 8 {
			t.Errorf("share %+v: sources %d, want 8", sh, sh.Sources)
		}
	}
	if len(shares) != 2 || slots != 64 || quota != 200001 {
		t.Errorf("plan(badq) = %d shares, %d clients, quota %d; want 2, 64, 200001", len(shares), slots, quota)
	}
}
