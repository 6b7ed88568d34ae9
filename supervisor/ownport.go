package supervisor

import (
	"bufio"
	"encoding/hex"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// A reload may bind an address in another form on a port the supervisor
// already listens on (":1060" then "0.0.0.0:1060", or "127.0.0.2:1060"
// beside ":1060"). The probe of checkAddressFree then finds the
// supervisor's own sockets, which SO_REUSEPORT lets the new one join; only
// a listener of another process makes the address taken. The kernel's
// table of listening sockets (/proc/self/net/tcp and tcp6: this network
// namespace's) names each by inode, which fstat gives for our own.

// listener is one listening socket of the kernel's table.
type listener struct {
	ip    net.IP
	inode uint64
}

// strangerOn reports whether a listening socket on port that is not one
// of ours (own) may hold addr's address: the same address, or a wildcard
// on either side. A table that cannot be read counts as a stranger: the
// probe's answer stands.
func strangerOn(ip net.IP, port int, own map[uint64]bool) bool {
	for _, path := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		ls, err := listeners(path, port)
		if err != nil {
			return true
		}
		for _, l := range ls {
			if own[l.inode] {
				continue
			}
			if ip == nil || ip.IsUnspecified() || l.ip.IsUnspecified() || l.ip.Equal(ip) {
				return true
			}
		}
	}
	return false
}

// listeners reads the sockets listening on port from one of the kernel's
// tables: "sl local_address rem_address st ... inode", addresses in hex
// (each 32-bit word in host byte order), state 0A for LISTEN.
func listeners(path string, port int) ([]listener, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil // no IPv6 on this host
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []listener
	sc := bufio.NewScanner(f)
	sc.Scan() // the header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != "0A" {
			continue
		}
		host, p, ok := strings.Cut(fields[1], ":")
		if n, err := strconv.ParseUint(p, 16, 16); !ok || err != nil || int(n) != port {
			continue
		}
		ip, err := procIP(host)
		inode, err2 := strconv.ParseUint(fields[9], 10, 64)
		if err != nil || err2 != nil {
			continue
		}
		out = append(out, listener{ip: ip, inode: inode})
	}
	return out, sc.Err()
}

// procIP decodes an address of /proc/net/tcp*: 4 or 16 bytes, each 32-bit
// word in host (little-endian here) byte order.
func procIP(s string) (net.IP, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, err
	}
	for i := 0; i+4 <= len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	return net.IP(b), nil
}

// ownInodes are the inodes of the supervisor's sockets.
func (s *Supervisor) ownInodes() map[uint64]bool {
	own := make(map[uint64]bool, len(s.sockets))
	for _, sock := range s.sockets {
		var st unix.Stat_t
		if !sock.closed && unix.Fstat(sock.fd, &st) == nil {
			own[st.Ino] = true
		}
	}
	return own
}
