package handoff

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// The upgrade handoff protocol: how a supervisor (the predecessor) hands
// its sockets to its successor in a binary upgrade, across releases. Its
// version changes whenever its encoding does. Versions are a set: the
// predecessor offers every version it speaks, the successor picks the
// newest one both speak and says which in its hello, and each side then
// asks the chosen version what it can do (Capabilities), never whether it
// is at least some number. Every release speaks the version of the release
// before it too, so that it can be upgraded to from that release and
// rolled back to it. TestProtocolPinned holds the encoding: a change that
// makes it fail must add a version and be noted in CHANGELOG.md.
//
// Version 1 (release 0.2.0) is no longer spoken: a successor started by
// 0.2.0 (whose environment offers no version) says so in its log and exits,
// and 0.2.0 serves on. Upgrade through 0.3.0.
//
// Version 2 (release 0.3.0). The successor finds the listening sockets and
// the channel as the descriptor layout says (see upgrade.go), and the
// variables of the environment table. The channel is a stream socket that
// carries lines both ways. From the launcher: "pid N". From the successor,
// first of all, "hello V RELEASE" (V the version it chose), or "refuse
// REASON" when it cannot take over (at any time before "serving"); then
// "ready" once every worker of it accepts. From the predecessor: "accept",
// or "refuse REASON". From the successor last: "serving", once it has
// written the pid file and told systemd MAINPID= and READY=1; the
// predecessor then retires. The pid file therefore names the successor
// only once the predecessor has accepted it.
//
// Version 3 (release 0.4.0) keeps all of version 2 and adds:
//   - LANCELOT_UPGRADE_ACTIVATED: the indexes of the sockets that came
//     from systemd (socket activation), comma separated, so that every
//     successor, however many upgrades later, leaves their addresses to the
//     socket unit;
//   - right after "serving", the line "conns K" carrying K descriptors
//     (SCM_RIGHTS, on the line's first byte): the ends through which the
//     successor's workers receive the connections the predecessor's
//     retiring workers hand over. K may be 0;
//   - the predecessor's answer to "conns": one line "request NAME" (HUP,
//     TTIN or TTOU) per operator's request that waited for the upgrade,
//     in order, then "done" (see requests.go). The successor carries them
//     out, then closes the channel.
const (
	// Protocol is the newest version this release speaks.
	Protocol = 3
)

// spoken is every version this release speaks, oldest first.
var spoken = []int{2, Protocol}

// Speaks reports whether this release speaks handoff protocol version v.
func Speaks(v int) bool {
	return slices.Contains(spoken, v)
}

// Capabilities is what a version of the protocol can do beyond version 2.
type Capabilities struct {
	// Activated: the predecessor says which sockets came from systemd.
	Activated bool
	// Conns: the successor sends its connection receivers after serving.
	Conns bool
	// Requests: the predecessor passes its waiting requests on on the
	// channel (release 0.3.0 signals them to the successor).
	Requests bool
}

// Can returns what version v can do.
func Can(v int) Capabilities {
	switch v {
	case 3:
		return Capabilities{Activated: true, Conns: true, Requests: true}
	}
	return Capabilities{}
}

// offer is the value of LANCELOT_UPGRADE_PROTOCOLS: every version spoken.
func offer() string {
	s := make([]string, len(spoken))
	for i, v := range spoken {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ",")
}

// legacyReady is release 0.2.0's readiness byte (protocol 1), recognised
// only to refuse a 0.2.0 successor at once.
const legacyReady = 0x01

// Words that start the lines.
const (
	linePID     = "pid"
	lineHello   = "hello"
	lineRefuse  = "refuse"
	lineReady   = "ready"
	lineAccept  = "accept"
	lineServing = "serving"
	lineConns   = "conns"
)

// maxLine bounds one line: a successor that is not lancelot must not make
// the predecessor buffer without end.
const maxLine = 512

// maxConns bounds the descriptors one "conns" line may announce.
const maxConns = 1024

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
	// ReportReady: every worker of the successor accepts.
	ReportReady
	// ReportServing: the successor took over (pid file, systemd).
	ReportServing
	// ReportConns: the successor's connection receivers, in Files.
	ReportConns
)

// Report is one message the predecessor reads.
type Report struct {
	Kind     ReportKind
	PID      int
	Protocol int
	Release  string
	Reason   string
	// Files are ReportConns' descriptors; the reader of the report owns
	// them.
	Files []*os.File
}

// ReportReader reads what the launcher and the successor send the
// predecessor.
type ReportReader struct {
	br  *bufio.Reader
	fds *fdQueue // descriptors received with the bytes; nil for a plain reader
}

// NewReportReader reads reports from r, which carries no descriptors.
func NewReportReader(r io.Reader) *ReportReader {
	return &ReportReader{br: bufio.NewReaderSize(r, maxLine)}
}

// ErrChannelClosed is the channel ending: the successor (and its launcher)
// closed it, by exiting or otherwise.
var ErrChannelClosed = errors.New("it exited, or closed the handoff channel")

// Next returns the next report. Anything that is not this protocol is an
// error that quotes what was read, so a log line can name it.
func (r *ReportReader) Next() (Report, error) {
	if b, err := r.br.Peek(1); err == nil && b[0] == legacyReady {
		return Report{}, errors.New("release 0.2.0's ready byte (handoff protocol 1): " +
			"a 0.2.0 successor, which this release does not hand over to; roll back through 0.3.0")
	}
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
	rep, err := parseReport(strings.TrimSuffix(string(line), "\n"))
	if err != nil || rep.Kind != ReportConns {
		return rep, err
	}
	return r.takeFiles(rep)
}

// takeFiles gives a "conns K" report the K descriptors that came with it.
func (r *ReportReader) takeFiles(rep Report) (Report, error) {
	k := rep.PID
	rep.PID = 0
	if k == 0 {
		return rep, nil
	}
	for range batches(k) {
		if b, err := r.br.ReadByte(); err != nil || b != 0 {
			return Report{}, fmt.Errorf("handoff channel: conns %d without its descriptors", k)
		}
	}
	if r.fds == nil || r.fds.len() < k {
		return Report{}, fmt.Errorf("handoff channel: conns %d came with fewer descriptors", k)
	}
	rep.Files = r.fds.take(k)
	return rep, nil
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
			return Report{Kind: ReportReady}, nil
		}
	case lineServing:
		if rest == "" {
			return Report{Kind: ReportServing}, nil
		}
	case lineConns:
		// The count travels in PID until takeFiles turns it into Files.
		if k, err := strconv.Atoi(rest); err == nil && k >= 0 && k <= maxConns {
			return Report{Kind: ReportConns, PID: k}, nil
		}
	}
	return Report{}, fmt.Errorf("not the handoff protocol: %q", line)
}

// formatLine is one line; reasons are folded onto it.
func formatLine(words ...string) string {
	return strings.Join(strings.Fields(strings.Join(words, " ")), " ") + "\n"
}

// writeLine writes one line.
func writeLine(w io.Writer, words ...string) error {
	_, err := io.WriteString(w, formatLine(words...))
	return err
}

// WritePID is the launcher's report of the successor's pid.
func WritePID(w io.Writer, pid int) error {
	return writeLine(w, linePID, strconv.Itoa(pid))
}

// Accept tells the successor it takes over.
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
