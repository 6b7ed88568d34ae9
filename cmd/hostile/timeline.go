package main

import "math"

// bucket is one second of the good client's questions, by start time.
type bucket struct {
	T    int64 `json:"t"` // unix seconds
	OK   int   `json:"ok"`
	Fail int   `json:"fail"`
}

// clean reports whether every question started in this second was
// answered, and at least one was: an empty second is a stall.
func (b bucket) clean() bool { return b.Fail == 0 && b.OK > 0 }

// timeline buckets samples per second of their start, every second from
// the first to the last, empty ones included.
func timeline(samples []sample) []bucket {
	if len(samples) == 0 {
		return nil
	}
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for _, s := range samples {
		lo, hi = min(lo, s.T/1000), max(hi, s.T/1000)
	}
	tl := make([]bucket, hi-lo+1)
	for i := range tl {
		tl[i].T = lo + int64(i)
	}
	for _, s := range samples {
		b := &tl[s.T/1000-lo]
		if s.Err == "" {
			b.OK++
		} else {
			b.Fail++
		}
	}
	return tl
}

// recovery is how the good client fared around an attack.
type recovery struct {
	// AfterEndS is the time from the attack's end to the start of the run
	// of clean seconds that ends the timeline: 0 if that run began before
	// the end; nil if the last second observed was not clean, or none was
	// observed after the end.
	AfterEndS *float64 `json:"recovery_after_end_s"`
	// OutageS is the time from the first unclean second at or after the
	// attack's start to the start of that clean run: how long clients
	// suffered, also for attacks that stall the server before they end.
	// 0 if no second was unclean; nil when AfterEndS is.
	OutageS *float64 `json:"outage_s"`
	// UncleanS counts the unclean seconds from the attack's start to the
	// end of the timeline.
	UncleanS int `json:"unclean_seconds"`
	// ObservedAfterEndS is how long the client kept asking after the end.
	ObservedAfterEndS float64 `json:"observed_after_end_s"`
}

// recoveryOf reads a timeline against an attack that ran from startMs to
// endMs (unix ms). A second counts as after the end once it ends after
// endMs, so the second in which the attack stopped must be clean too.
func recoveryOf(tl []bucket, startMs, endMs int64) recovery {
	var r recovery
	if len(tl) == 0 {
		return r
	}
	r.ObservedAfterEndS = max(0, float64((tl[len(tl)-1].T+1)*1000-endMs)/1000)
	firstBad := int64(-1)
	for _, b := range tl {
		if (b.T+1)*1000 > startMs && !b.clean() {
			r.UncleanS++
			if firstBad < 0 {
				firstBad = b.T * 1000
			}
		}
	}
	point, ok := cleanSince(tl)
	if !ok || r.ObservedAfterEndS == 0 {
		return r
	}
	after := max(0, float64(point-endMs)/1000)
	outage := 0.0
	if firstBad >= 0 {
		outage = max(0, float64(point-firstBad)/1000)
	}
	r.AfterEndS, r.OutageS = &after, &outage
	return r
}

// cleanSince finds the start (unix ms) of the run of clean seconds that
// ends the timeline; false if the last second is not clean.
func cleanSince(tl []bucket) (int64, bool) {
	k := len(tl)
	for k > 0 && tl[k-1].clean() {
		k--
	}
	if k == len(tl) {
		return 0, false
	}
	return tl[k].T * 1000, true
}
