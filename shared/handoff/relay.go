package handoff

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// relayTimeout bounds the whole relay: release 0.2.0 gives its successor
// 15 s to be ready, then kills it.
const relayTimeout = 14 * time.Second

// Relay takes over from a release 0.2.0 supervisor (u.Protocol is
// LegacyProtocol) without becoming its child for good. Release 0.2.0
// starts its successor directly, so a successor that served would be the
// old main process's child when it sent MAINPID=, and systemd would then
// supervise it as "not our child": a later `systemctl stop` SIGKILLs the
// whole unit instead of waiting for the drain. So the process 0.2.0
// started only relays: it starts the real successor through the launcher
// (which exits at once, leaving it systemd's child), speaking version 2 to
// it, and when it is ready tells systemd its pid, tells 0.2.0 "ready" the
// way 0.2.0 understands, waits for 0.2.0 to let go, and accepts it.
// notify sends an sd_notify message. binary and args start the successor.
func Relay(u *Upgrade, binary string, args []string, release string, notify func(string)) error {
	local, remote, err := NewChannel()
	if err != nil {
		return err
	}
	defer local.Close()
	offer := Upgrade{Sockets: u.Sockets, Channel: remote, Running: u.Running, Configured: u.Configured}
	launch := append([]string{"upgrade-launch", "--", binary}, args...)
	cmd := offer.Command("/proc/self/exe", launch, os.Environ(), release)
	cmd.Args[0] = binary
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	err = Start(cmd)
	remote.Close()
	if err != nil {
		return fmt.Errorf("start the successor: %w", err)
	}
	go cmd.Wait() // the launcher exits at once
	local.SetReadDeadline(time.Now().Add(relayTimeout))
	pid, err := awaitReady(NewReportReader(local))
	if err != nil {
		killSuccessor(pid)
		return err
	}
	notify(fmt.Sprintf("MAINPID=%d", pid))
	if err := u.Ready(); err != nil {
		Refuse(local, err.Error())
		return err
	}
	if err := Accept(local); err != nil {
		return err
	}
	rep, err := NewReportReader(local).Next()
	if err != nil || rep.Kind != ReportServing {
		return fmt.Errorf("the successor %d did not take over: %v", pid, errors.Join(err, fmt.Errorf("%+v", rep)))
	}
	return nil
}

// awaitReady reads the successor's reports until it is ready, returning
// its pid.
func awaitReady(rd *ReportReader) (int, error) {
	pid := 0
	for {
		rep, err := rd.Next()
		if err != nil {
			return pid, fmt.Errorf("the successor failed: %w", err)
		}
		switch rep.Kind {
		case ReportPID:
			pid = rep.PID
		case ReportHello:
			if rep.Protocol != Protocol {
				return pid, fmt.Errorf("the successor announced handoff protocol %d", rep.Protocol)
			}
		case ReportRefuse:
			return pid, fmt.Errorf("the successor gave up: %s", rep.Reason)
		case ReportReady:
			if pid == 0 || rep.Protocol != Protocol {
				return pid, errors.New("the successor said ready out of turn")
			}
			return pid, nil
		default:
			return pid, fmt.Errorf("the successor said %+v out of turn", rep)
		}
	}
}

func killSuccessor(pid int) {
	if pid > 0 {
		if p, err := os.FindProcess(pid); err == nil {
			p.Kill()
		}
	}
}
