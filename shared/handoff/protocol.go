package handoff

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The upgrade handoff protocol: how a supervisor (the predecessor) hands
// its sockets to its successor in a binary upgrade, across releases. Its
// version changes whenever its encoding does, and every release speaks the
// version of the release before it too, so that each release can be
// upgraded to from the previous one and rolled back to it. TestProtocolPinned
// holds the encoding: a change that makes it fail must bump Protocol and be
// noted in CHANGELOG.md.
//
// Version 1 (release 0.2.0). The successor finds the listening sockets at
// fds 3 .. 3+n-1 (n in LANCELOT_UPGRADE_FDS), the readiness descriptor at
// LANCELOT_UPGRADE_READY_FD (3+n) and the running worker count in
// LANCELOT_UPGRADE_WORKERS. Once every worker of it accepts, it writes its
// pid file, sends MAINPID= and READY=1, then writes the single byte 0x01 to
// the readiness descriptor; the predecessor reads that byte, closes its end
// and retires. Nothing else crosses.
//
// Version 2 (release 0.3.0) keeps all of version 1, so a version 1
// successor understands a version 2 predecessor, and adds the following.
// Every variable starts with LANCELOT_UPGRADE_, because release 0.2.0
// passes on to its own successor every variable but those: a name outside
// that prefix would reach a 0.3.0 successor of a 0.2.0 supervisor that was
// itself started by 0.3.0, and make it speak version 2 to 0.2.0.
//   - LANCELOT_UPGRADE_PROTOCOLS: the versions the predecessor speaks, comma
//     separated, LANCELOT_UPGRADE_CONFIGURED (the configured worker count),
//     LANCELOT_UPGRADE_FROM (the predecessor's release) and
//     LANCELOT_UPGRADE_LAUNCHER (the pid of the launcher that started the
//     successor and exits at once).
//   - The readiness descriptor is a stream socket that carries lines both
//     ways. From the launcher: "pid N". From the successor, first of all,
//     "hello V RELEASE" (V the version it chose), or "refuse REASON" when it
//     cannot take over; then "ready" once every worker of it accepts. From
//     the predecessor: "accept" (after it has told systemd MAINPID=N), or
//     "refuse REASON". From the successor last: "serving", once it has
//     written the pid file and told systemd READY=1; the predecessor then
//     retires. The pid file therefore names the successor only once the
//     predecessor has accepted it.
const (
	// Protocol is the newest version this release speaks.
	Protocol = 2
	// LegacyProtocol is release 0.2.0's version, which this release also
	// speaks, in both roles.
	LegacyProtocol = 1
)

// Speaks reports whether this release speaks handoff protocol version v.
func Speaks(v int) bool {
	return v == LegacyProtocol || v == Protocol
}

// legacyReady is version 1's readiness byte.
const legacyReady = 0x01

// Words that start the lines of version 2.
const (
	linePID     = "pid"
	lineHello   = "hello"
	lineRefuse  = "refuse"
	lineReady   = "ready"
	lineAccept  = "accept"
	lineServing = "serving"
)

// maxLine bounds one line: a successor that is not lancelot must not make
// the predecessor buffer without end.
const maxLine = 512

// ReportKind is what a Report says.
type ReportKind int

// What the predecessor reads on the channel.
const (
	// ReportPID: the launcher started the successor, pid PID.
	ReportPID ReportKind = iota + 1
	// ReportHello: the successor speaks Protocol (and is release Release).
	ReportHello
	// ReportRefuse: the successor cannot take over, for Reason.
	ReportRefuse
	// ReportReady: every worker of the successor accepts. Protocol is 1 for
	// a version 1 successor, which said nothing before.
	ReportReady
	// ReportServing: the successor took over (pid file, systemd).
	ReportServing
)

// Report is one message the predecessor reads.
type Report struct {
	Kind     ReportKind
	PID      int
	Protocol int
	Release  string
	Reason   string
}

// ReportReader reads what the launcher and the successor send the
// predecessor.
type ReportReader struct {
	br *bufio.Reader
}

// NewReportReader reads reports from r.
func NewReportReader(r io.Reader) *ReportReader {
	return &ReportReader{br: bufio.NewReaderSize(r, maxLine)}
}

// ErrChannelClosed is the channel ending: the successor (and its launcher)
// closed it, by exiting or otherwise.
var ErrChannelClosed = errors.New("it exited, or closed the handoff channel")

// Next returns the next report. Anything that is not this protocol is an
// error that quotes what was read, so a log line can name it.
func (r *ReportReader) Next() (Report, error) {
	b, err := r.br.ReadByte()
	if err != nil {
		return Report{}, channelErr(err)
	}
	if b == legacyReady {
		return Report{Kind: ReportReady, Protocol: LegacyProtocol}, nil
	}
	r.br.UnreadByte()
	line, err := r.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return Report{}, fmt.Errorf("not the handoff protocol: a line of more than %d bytes (%.40q...)", maxLine, line)
		}
		if errors.Is(err, io.EOF) && len(line) > 0 {
			return Report{}, fmt.Errorf("not the handoff protocol: %q then the channel closed", line)
		}
		return Report{}, channelErr(err)
	}
	return parseReport(strings.TrimSuffix(string(line), "\n"))
}

func channelErr(err error) error {
	if errors.Is(err, io.EOF) {
		return ErrChannelClosed
	}
	return fmt.Errorf("handoff channel: %w", err)
}

func parseReport(line string) (Report, error) {
	word, rest, _ := strings.Cut(line, " ")
	switch word {
	case linePID:
		pid, err := strconv.Atoi(rest)
		if err == nil && pid > 0 {
			return Report{Kind: ReportPID, PID: pid}, nil
		}
	case lineHello:
		v, release, _ := strings.Cut(rest, " ")
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			return Report{Kind: ReportHello, Protocol: n, Release: release}, nil
		}
	case lineRefuse:
		return Report{Kind: ReportRefuse, Reason: rest}, nil
	case lineReady:
		if rest == "" {
			return Report{Kind: ReportReady, Protocol: Protocol}, nil
		}
	case lineServing:
		if rest == "" {
			return Report{Kind: ReportServing}, nil
		}
	}
	return Report{}, fmt.Errorf("not the handoff protocol: %q", line)
}

// writeLine writes one line of version 2; reasons are folded onto it.
func writeLine(w io.Writer, words ...string) error {
	line := strings.Join(strings.Fields(strings.Join(words, " ")), " ") + "\n"
	_, err := io.WriteString(w, line)
	return err
}

// WritePID is the launcher's report of the successor's pid.
func WritePID(w io.Writer, pid int) error {
	return writeLine(w, linePID, strconv.Itoa(pid))
}

// Accept tells a version 2 successor it takes over.
func Accept(w io.Writer) error {
	return writeLine(w, lineAccept)
}

// Refuse tells the other side why the handoff will not happen.
func Refuse(w io.Writer, reason string) error {
	return writeLine(w, lineRefuse, reason)
}

// readVerdict is the successor's reading of the predecessor's answer to
// "ready": nil for accept, a *RefusedError for refuse.
func readVerdict(r io.Reader) error {
	br := bufio.NewReaderSize(io.LimitReader(r, maxLine), maxLine)
	line, err := br.ReadString('\n')
	if err != nil {
		if errors.Is(err, io.EOF) {
			return ErrPredecessorGone
		}
		return fmt.Errorf("handoff channel: %w", err)
	}
	word, rest, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
	switch word {
	case lineAccept:
		return nil
	case lineRefuse:
		return &RefusedError{Reason: rest}
	}
	return fmt.Errorf("handoff channel: unexpected %q from the old supervisor", line)
}

// ErrPredecessorGone is the channel closing before the predecessor
// answered: it died.
var ErrPredecessorGone = errors.New("the old supervisor closed the handoff channel without answering")

// RefusedError is the predecessor's refusal.
type RefusedError struct {
	Reason string
}

func (e *RefusedError) Error() string {
	return "the old supervisor refused the handover: " + e.Reason
}
