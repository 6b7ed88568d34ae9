package main

import (
	"testing"
)

// tl builds a timeline from "ok/fail" pairs, one per second from t=100.
func tl(pairs ...[2]int) []bucket {
	out := make([]bucket, len(pairs))
	for i, p := range pairs {
		out[i] = bucket{T: 100 + int64(i), OK: p[0], Fail: p[1]}
	}
	return out
}

func TestTimeline(t *testing.T) {
	samples := []sample{{T: 100_100}, {T: 100_900, Err: "timeout"}, {T: 102_000}}
	got := timeline(samples)
	want := tl([2]int{1, 1}, [2]int{0, 0}, [2]int{1, 0})
	if len(got) != len(want) {
		t.Fatalf("timeline = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("timeline[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	if timeline(nil) != nil {
		t.Error("timeline(nil) is not empty")
	}
}

func TestRecoveryOf(t *testing.T) {
	ok, bad, empty := [2]int{50, 0}, [2]int{10, 5}, [2]int{0, 0}
	f := func(v float64) *float64 { return &v }
	for _, tc := range []struct {
		name           string
		tl             []bucket
		startMs, endMs int64
		after, outage  *float64
		unclean        int
	}{
		// The attack runs 102.0 s to 104.5 s in every case.
		{"never hurt", tl(ok, ok, ok, ok, ok, ok, ok), 102_000, 104_500, f(0), f(0), 0},
		// A blip mid-attack is an outage of its own length only.
		{"blip", tl(ok, ok, bad, ok, ok, ok, ok), 102_000, 104_500, f(0), f(1), 1},
		{"hurt, recovered at the end", tl(ok, ok, bad, bad, ok, ok, ok), 102_000, 104_500, f(0), f(2), 2},
		// The second the attack ended in (104) was bad: recovered at 105.
		{"recovers after", tl(ok, ok, bad, bad, bad, ok, ok), 102_000, 104_500, f(0.5), f(3), 3},
		// A stall shows as empty seconds, not clean ones.
		{"stall", tl(ok, ok, empty, empty, empty, empty, ok, ok), 102_000, 104_500, f(1.5), f(4), 4},
		{"never recovers", tl(ok, ok, bad, bad, bad, ok, bad), 102_000, 104_500, nil, nil, 4},
		// A blip after a clean second still delays recovery.
		{"relapse", tl(ok, ok, ok, ok, ok, bad, ok, ok), 102_000, 104_500, f(1.5), f(1), 1},
		// Failures before the attack are not the attack's.
		{"before", tl(bad, ok, ok, ok, ok, ok), 102_000, 104_500, f(0), f(0), 0},
		{"observed only before the end", tl(ok, ok, ok), 102_000, 104_500, nil, nil, 0},
		{"empty", nil, 102_000, 104_500, nil, nil, 0},
	} {
		got := recoveryOf(tc.tl, tc.startMs, tc.endMs)
		if !eqPtr(got.AfterEndS, tc.after) || !eqPtr(got.OutageS, tc.outage) || got.UncleanS != tc.unclean {
			t.Errorf("%s: recoveryOf = after %v outage %v unclean %d; want %v %v %d", tc.name,
				show(got.AfterEndS), show(got.OutageS), got.UncleanS, show(tc.after), show(tc.outage), tc.unclean)
		}
	}
}

func eqPtr(a, b *float64) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

func show(p *float64) any {
	if p == nil {
		return "nil"
	}
	return *p
}

func TestWindowOf(t *testing.T) {
	samples := []sample{{T: 10, Us: 1000}, {T: 20, Us: 3000, Err: "timeout"}, {T: 30, Us: 2000}, {T: 40, Us: 5000}}
	w := windowOf(samples, 20, 40)
	if w.Count != 2 || w.OK != 1 || w.Failures["timeout"] != 1 || w.Latency == nil || w.Latency.Max != 2 {
		t.Errorf("windowOf([20,40)) = %+v (latency %+v)", w, w.Latency)
	}
	if w := windowOf(samples, 50, 60); w.Count != 0 || w.Latency != nil {
		t.Errorf("windowOf(empty) = %+v", w)
	}
}
