package proxyproto

import "errors"

// ErrIncomplete reports that the bytes so far are a valid beginning of a
// header: the caller keeps them and calls Parse again when more arrive.
var ErrIncomplete = errors.New("proxyproto: incomplete header")

// Reasons a header is refused. They are the label values of
// lancelot_proxy_header_errors_total{reason}, so they must stay stable.
// Parse returns only the first five; the server uses the last two.
const (
	// ReasonMissing: the first bytes are not a PROXY signature, so a
	// trusted peer sent no header.
	ReasonMissing = "missing"
	// ReasonMalformed: bad syntax, address or port, a bad v2 version or
	// command, or a v2 address block too short for its family.
	ReasonMalformed = "malformed"
	// ReasonTooLong: a v1 line with no CRLF in its first 107 bytes, or a v2
	// length field over MaxV2Length.
	ReasonTooLong = "too_long"
	// ReasonUnsupported: a v2 PROXY command over a family or transport
	// other than TCP over IPv4 or IPv6 (UNIX, DGRAM, UNSPEC, undefined).
	ReasonUnsupported = "unsupported"
	// ReasonVersion: a well-formed signature of a version the Mode does
	// not allow.
	ReasonVersion = "version"
	// ReasonUntrusted: a PROXY signature from a peer outside the AllowList.
	ReasonUntrusted = "untrusted"
	// ReasonTimeout: the header was not complete within the read timeout.
	ReasonTimeout = "timeout"
)

// Error is a header that must be refused by closing the connection.
type Error struct {
	// Reason is one of the Reason constants, fit for a metrics label.
	Reason string
	// Detail says what was wrong, for logs.
	Detail string
}

// Error returns "proxyproto: <reason> header: <detail>".
func (e *Error) Error() string {
	return "proxyproto: " + e.Reason + " header: " + e.Detail
}

// refuse is the result of Parse for a header that must be refused.
func refuse(reason, detail string) (Header, int, error) {
	return Header{}, 0, &Error{Reason: reason, Detail: detail}
}

// incomplete is the result of Parse for a valid prefix.
func incomplete() (Header, int, error) {
	return Header{}, 0, ErrIncomplete
}

// malformed is a ReasonMalformed error for the v1 scanners, which return a
// bare error.
func malformed(detail string) error {
	return &Error{Reason: ReasonMalformed, Detail: detail}
}
