package proxyproto

import (
	"fmt"
	"strconv"
)

// Mode selects which header versions a trusted peer may send.
type Mode int

const (
	// Off turns the protocol off: no header is expected or accepted.
	Off Mode = iota
	// V1 accepts only the v1 text header.
	V1
	// V2 accepts only the v2 binary header.
	V2
	// Auto accepts either version.
	Auto
)

// ParseMode parses the configuration spelling of a Mode: "off", "v1", "v2"
// or "auto".
func ParseMode(s string) (Mode, error) {
	for m := Off; m <= Auto; m++ {
		if s == m.String() {
			return m, nil
		}
	}
	return Off, fmt.Errorf("proxyproto: unknown mode %q (want off, v1, v2 or auto)", s)
}

// String returns the configuration spelling of m, as ParseMode accepts it.
func (m Mode) String() string {
	switch m {
	case Off:
		return "off"
	case V1:
		return "v1"
	case V2:
		return "v2"
	case Auto:
		return "auto"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// allows reports whether m accepts headers of the given version. Off and
// out-of-range modes accept none, so Parse refuses every signature.
func (m Mode) allows(version int) bool {
	return m == Auto || m == V1 && version == 1 || m == V2 && version == 2
}
