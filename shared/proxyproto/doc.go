// Package proxyproto parses the PROXY protocol header (versions 1 and 2, as
// HAProxy sends with send-proxy and send-proxy-v2) that a load balancer puts
// in front of a client's first bytes, so that lancelot can see the client's
// address instead of the balancer's.
//
// The spec is https://www.haproxy.org/download/2.6/doc/proxy-protocol.txt.
//
// # Why incremental
//
// lancelot's workers are epoll event loops: they read whatever bytes have
// arrived and may not block waiting for more. So Parse never reads; it looks
// at a byte slice that grows between calls and says one of three things: the
// header is complete (and how many bytes it took, the rest being the client's
// first question), the bytes so far are a valid prefix (ErrIncomplete: call
// again when more arrive), or the header must be refused (*Error: close the
// connection). A prefix is never refused if some continuation of it is a
// valid header, and it is refused as soon as none is, so a peer cannot hold a
// connection open with bytes that are already doomed. The result for a given
// stream never depends on how it was split into reads. Complete and
// incomplete results do not allocate.
//
// # Reasons
//
// Every refusal carries a Reason, used as the label value of
// lancelot_proxy_header_errors_total{reason}. Parse returns ReasonMissing,
// ReasonMalformed, ReasonTooLong, ReasonUnsupported and ReasonVersion; the
// server adds ReasonUntrusted (a signature from a peer outside the AllowList,
// found with HasSignature) and ReasonTimeout (no complete header within the
// read timeout).
//
// Not a public API: this package serves the lancelot binary only.
package proxyproto
