package handoff_test

import (
	"strings"
	"testing"
	"time"

	"github.com/camelot/lancelot/shared/handoff"
)

// TestTimeoutsOrder holds the order of the timeout table: a successor that
// is not lancelot is found out (hello) long before it could be ready; the
// receivers after "serving" come well within what "serving" itself may
// take; and the successor waits for a verdict at least as long as the
// predecessor waits for its ready.
func TestTimeoutsOrder(t *testing.T) {
	order := []struct {
		name string
		d    time.Duration
	}{
		{"gone", handoff.TimeoutGone}, {"hello", handoff.TimeoutHello}, {"conns", handoff.TimeoutConns},
		{"serving", handoff.TimeoutServing}, {"ready", handoff.TimeoutReady},
	}
	for i := 1; i < len(order); i++ {
		if order[i-1].d >= order[i].d {
			t.Errorf("timeout %s (%v) not below %s (%v)", order[i-1].name, order[i-1].d, order[i].name, order[i].d)
		}
	}
	if handoff.TimeoutVerdict < handoff.TimeoutReady {
		t.Errorf("verdict timeout %v below the ready timeout %v", handoff.TimeoutVerdict, handoff.TimeoutReady)
	}
}

// TestPredecessorSteps drives the predecessor's state machine through
// each order of reports, with the clock.
func TestPredecessorSteps(t *testing.T) {
	type r = handoff.Report
	t0 := time.Unix(1000, 0)
	pid, hello2, hello3 := r{Kind: handoff.ReportPID, PID: 7}, r{Kind: handoff.ReportHello, Protocol: 2, Release: "0.3.0"},
		r{Kind: handoff.ReportHello, Protocol: 3, Release: "0.4.0"}
	ready, serving, conns := r{Kind: handoff.ReportReady}, r{Kind: handoff.ReportServing}, r{Kind: handoff.ReportConns}
	for _, tc := range []struct {
		name    string
		known   bool
		reports []r
		at      time.Duration // the clock when Expired is asked, after the reports; 0: not asked
		want    handoff.Action
		wantErr string
	}{
		// Success cases
		{"version 3", true, []r{pid, hello3, ready, serving, conns}, 0, handoff.HandOver, ""},
		{"version 2 hands over at serving", true, []r{pid, hello2, ready, serving}, 0, handoff.HandOver, ""},
		{"version 3 without receivers drains", true, []r{pid, hello3, ready, serving}, 20 * time.Second, handoff.HandOver, ""},
		{"version 3 channel ends after serving", true, []r{pid, hello3, ready, serving}, -1, handoff.HandOver, ""},
		{"ready asks for accept", true, []r{pid, hello3, ready}, 0, handoff.SendAccept, ""},
		{"the launcher's pid after the successor's lines", true, []r{hello3, ready, pid, serving, conns}, 0, handoff.HandOver, ""},
		// Failure cases
		{"unknown version", true, []r{pid, {Kind: handoff.ReportHello, Protocol: 4}}, 0, handoff.Wait, "announced handoff protocol 4"},
		{"release 0.2.0 successor", true, []r{pid, {Kind: handoff.ReportHello, Protocol: 1}}, 0, handoff.Wait, "protocol 1"},
		{"ready without hello", true, []r{pid, ready}, 0, handoff.Wait, "ready without its hello"},
		{"serving before accept", true, []r{pid, hello3, serving}, 0, handoff.Wait, "before it was accepted"},
		{"a second pid", true, []r{pid, hello3, pid}, 0, handoff.Wait, "pid out of turn"},
		{"refuse", true, []r{pid, {Kind: handoff.ReportRefuse, Reason: "config: bad"}}, 0, handoff.Wait, "gave up: config: bad"},
		{"refuse after accept", true, []r{pid, hello3, ready, {Kind: handoff.ReportRefuse, Reason: "x"}}, 0, handoff.Wait, "gave up: x"},
		{"no hello from an unknown binary", false, []r{pid}, 3 * time.Second, handoff.Wait, "no handoff hello within 3s"},
		{"a known binary may be slow to say hello", true, []r{pid}, 3 * time.Second, handoff.Wait, ""},
		{"not ready", true, []r{pid, hello3}, 15 * time.Second, handoff.Wait, "not ready within 15s"},
		{"channel ends before serving", true, []r{pid, hello3, ready}, -1, handoff.Wait, "injected"},
		{"accepted but no serving", true, []r{pid, hello3, ready}, 11 * time.Second, handoff.Wait, "did not take over within 10s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := handoff.NewPredecessor(t0, tc.known)
			var act handoff.Action
			var err error
			for i, rep := range tc.reports {
				if act, err = p.Step(rep, t0); err != nil {
					break
				}
				if act == handoff.SendAccept && i < len(tc.reports)-1 {
					p.Accepted(t0)
				}
			}
			switch {
			case err != nil:
			case tc.at < 0:
				act, err = p.ChannelEnded(errInjected)
			case tc.at > 0:
				if tc.reports[len(tc.reports)-1].Kind == handoff.ReportReady {
					p.Accepted(t0)
				}
				act, err = p.Expired(t0.Add(tc.at))
			}
			if act != tc.want || (err == nil) != (tc.wantErr == "") || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("after %v: %v, %v; want %v and an error with %q", tc.reports, act, err, tc.want, tc.wantErr)
			}
		})
	}
}

type injected struct{}

func (injected) Error() string { return "injected" }

// errInjected is a channel's end, as the supervisor would pass it.
var errInjected error = injected{}
