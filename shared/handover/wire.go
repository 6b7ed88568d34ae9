package handover

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// MaxBatch is the most connections one packet carries; the kernel allows
// 253 descriptors per SCM_RIGHTS message.
const MaxBatch = 64

// MaxInput caps the unanswered bytes one connection carries: a partial
// question is shorter than --max-question-bytes, whose cap is far below.
const MaxInput = 16 << 10

// maxPacket caps one batch, header and records included; a sender starts
// a new batch before a record would cross it.
const maxPacket = 128 << 10

const (
	batchMagic   = 'H'
	ackMagic     = 'A'
	wireVersion  = 1
	batchHeader  = 1 + 1 + 4 + 1 // magic, version, seq, count
	recordFixed  = 1 + 1 + 8 + 1 + 16 + 2 + 4
	ackHeader    = 1 + 1 + 4 + 1 + 1 // magic, version, seq, batch verdict, count
	flagFresh    = 1 << 0
	familyNone   = 0
	familyInet4  = 4
	familyInet6  = 6
	maxPhase     = 2
	maxWireSince = int64(24 * time.Hour)
)

// Conn is one connection's state. FD is the descriptor: the sender's own,
// which Send passes and never closes; on the receiving side the received
// copy, owned by the receiver once it is Taken.
type Conn struct {
	FD int
	// Phase is what the connection's next bytes must be (the worker's
	// connPhase: questions, a PROXY header, no PROXY signature).
	Phase uint8
	// Fresh: it has not sent a byte yet.
	Fresh bool
	// Since is how long its current deadline has been running: since the
	// accept, the end of the last question, or the first byte of In.
	Since time.Duration
	// Client is the client a PROXY header named; invalid when the peer is
	// the client.
	Client netip.AddrPort
	// In is what was read and not answered: the start of a question.
	Input []byte
}

// recordSize is c's encoded size.
func recordSize(c *Conn) int { return recordFixed + len(c.Input) }

// Refusal is the receiver's verdict on one connection.
type Refusal uint8

// Verdicts. Taken is the only one that moves the connection.
const (
	Taken Refusal = iota
	RefusedMaxConnections
	RefusedPerSource
	RefusedStopping
	RefusedState
	RefusedBatch // the whole batch was refused: it could not be trusted
	numRefusals
)

func (r Refusal) String() string {
	switch r {
	case Taken:
		return "taken"
	case RefusedMaxConnections:
		return "max_connections"
	case RefusedPerSource:
		return "max_connections_per_source"
	case RefusedStopping:
		return "receiver_stopping"
	case RefusedState:
		return "state"
	case RefusedBatch:
		return "batch"
	}
	return fmt.Sprintf("refusal(%d)", uint8(r))
}

// ErrMalformed is a packet that does not decode.
var ErrMalformed = errors.New("handover: malformed packet")

func malformed(why string) error { return fmt.Errorf("%w: %s", ErrMalformed, why) }

// encodeBatch appends the batch to b.
func encodeBatch(b []byte, seq uint32, conns []Conn) []byte {
	b = append(b, batchMagic, wireVersion)
	b = binary.BigEndian.AppendUint32(b, seq)
	b = append(b, uint8(len(conns)))
	for i := range conns {
		c := &conns[i]
		var flags uint8
		if c.Fresh {
			flags |= flagFresh
		}
		b = append(b, c.Phase, flags)
		b = binary.BigEndian.AppendUint64(b, uint64(min(max(int64(c.Since), 0), maxWireSince)))
		b = appendAddr(b, c.Client)
		b = binary.BigEndian.AppendUint32(b, uint32(len(c.Input)))
		b = append(b, c.Input...)
	}
	return b
}

func appendAddr(b []byte, ap netip.AddrPort) []byte {
	var a [16]byte
	fam := uint8(familyNone)
	switch {
	case !ap.IsValid():
	case ap.Addr().Is4():
		fam = familyInet4
		a4 := ap.Addr().As4()
		copy(a[:], a4[:])
	default:
		fam = familyInet6
		a = ap.Addr().As16()
	}
	b = append(b, fam)
	b = append(b, a[:]...)
	return binary.BigEndian.AppendUint16(b, ap.Port())
}

// DecodeBatch parses a batch packet. Each Conn's FD is -1: the caller
// pairs them with the descriptors that came with the packet. Input slices
// alias p.
func DecodeBatch(p []byte) (seq uint32, conns []Conn, err error) {
	if len(p) < batchHeader {
		return 0, nil, malformed("short header")
	}
	if p[0] != batchMagic || p[1] != wireVersion {
		return 0, nil, malformed(fmt.Sprintf("magic %#x version %d", p[0], p[1]))
	}
	seq = binary.BigEndian.Uint32(p[2:])
	n := int(p[6])
	if n == 0 || n > MaxBatch {
		return seq, nil, malformed(fmt.Sprintf("count %d", n))
	}
	p = p[batchHeader:]
	conns = make([]Conn, n)
	for i := range conns {
		if p, err = decodeRecord(p, &conns[i]); err != nil {
			return seq, nil, err
		}
	}
	if len(p) != 0 {
		return seq, nil, malformed(fmt.Sprintf("%d trailing bytes", len(p)))
	}
	return seq, conns, nil
}

func decodeRecord(p []byte, c *Conn) ([]byte, error) {
	if len(p) < recordFixed {
		return nil, malformed("short record")
	}
	c.FD = -1
	c.Phase, c.Fresh = p[0], p[1]&flagFresh != 0
	if c.Phase > maxPhase || p[1]&^flagFresh != 0 {
		return nil, malformed(fmt.Sprintf("phase %d flags %#x", p[0], p[1]))
	}
	since := binary.BigEndian.Uint64(p[2:])
	if since > uint64(maxWireSince) {
		return nil, malformed("deadline out of range")
	}
	c.Since = time.Duration(since)
	var err error
	if c.Client, err = decodeAddr(p[10:29]); err != nil {
		return nil, err
	}
	in := binary.BigEndian.Uint32(p[29:])
	p = p[recordFixed:]
	if in > MaxInput || int(in) > len(p) {
		return nil, malformed(fmt.Sprintf("input of %d bytes", in))
	}
	if in > 0 {
		c.Input = p[:in:in]
	}
	return p[in:], nil
}

func decodeAddr(p []byte) (netip.AddrPort, error) {
	port := binary.BigEndian.Uint16(p[17:])
	switch p[0] {
	case familyNone:
		return netip.AddrPort{}, nil
	case familyInet4:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(p[1:5])), port), nil
	case familyInet6:
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(p[1:17])), port), nil
	}
	return netip.AddrPort{}, malformed(fmt.Sprintf("address family %d", p[0]))
}

// encodeAck appends an ack to b: a verdict per connection, or whole, the
// batch's refusal.
func encodeAck(b []byte, seq uint32, whole Refusal, verdicts []Refusal) []byte {
	b = append(b, ackMagic, wireVersion)
	b = binary.BigEndian.AppendUint32(b, seq)
	b = append(b, uint8(whole), uint8(len(verdicts)))
	for _, v := range verdicts {
		b = append(b, uint8(v))
	}
	return b
}

// decodeAck parses an ack for a batch of n connections with sequence
// number seq; a whole refusal becomes n verdicts.
func decodeAck(p []byte, seq uint32, n int) ([]Refusal, error) {
	if len(p) < ackHeader || p[0] != ackMagic || p[1] != wireVersion {
		return nil, malformed("ack header")
	}
	if got := binary.BigEndian.Uint32(p[2:]); got != seq {
		return nil, malformed(fmt.Sprintf("ack for batch %d, want %d", got, seq))
	}
	whole, count := Refusal(p[6]), int(p[7])
	p = p[ackHeader:]
	out := make([]Refusal, n)
	if whole != Taken {
		for i := range out {
			out[i] = RefusedBatch
		}
		return out, nil
	}
	if count != n || len(p) != n {
		return nil, malformed(fmt.Sprintf("ack of %d verdicts for %d connections", count, n))
	}
	for i, v := range p {
		if Refusal(v) >= numRefusals {
			return nil, malformed(fmt.Sprintf("verdict %d", v))
		}
		out[i] = Refusal(v)
	}
	return out, nil
}
