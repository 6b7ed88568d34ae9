// Command hostile measures how a lancelot server holds up under hostile
// clients while one well-behaved client keeps asking. It is the measuring
// tool behind docs/bench/hostile.sh; it is not part of lancelot.
//
// Modes (`hostile MODE -h` for each one's flags):
//
//	good               a well-behaved client: asks every --interval, checks each
//	                   answer byte for byte, prints latency, failures by kind and
//	                   a per-second timeline as JSON
//	silent             connections that never send a byte
//	trickle            slowloris: one byte of a question every --interval, never a '?'
//	nonreader          connections that pipeline questions and never read
//	badq               connect, ask an unknown question, read until closed, again
//	nul                connections that send only NUL bytes; time until closed
//	proxyv2            connections that send a PROXY v2 header; time until closed
//	metrics-idle       idle HTTP connections to the metrics address
//	                   (--variant get: one GET /metrics first; silent: nothing)
//	metrics-bigheader  ~1 MiB request headers sent slowly to the metrics address
//	observe            sample a server's process tree: RSS, fds, processes
//	restart            SIGKILL a worker; time until a new one runs and answers
//	probe              ask once, retrying until answered (is the server up?)
//	report             turn hostile.sh's per-attack directories into JSON and
//	                   a markdown table
//
// The model of an attack: --count connection slots, held for at most
// --duration (setup included). The slots are split over child processes
// (this binary re-executed as "hostile child") so that none holds more than
// --per-process descriptors, and over source addresses 127.0.0.2..127.0.0.N
// so that none carries more than --per-source connections to one server port.
// A slot whose connection the server closes opens a new one after
// --reconnect-delay, unless --reconnect=false, so the pressure lasts. Every
// address, the server's and the sources, is in 127.0.0.0/8: this tool never
// sends a packet off the machine.
//
// Output is one JSON value on stdout; progress and errors go to stderr.
package main
