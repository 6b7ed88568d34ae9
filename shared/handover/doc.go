// Package handover is the channel over which one worker process hands its
// open connections to another: the descriptor of each, and what it needs
// to go on exactly where it stopped.
//
// Model. The supervisor creates the channel (Pair: a SOCK_SEQPACKET
// socket pair) and passes one end to the sending worker and the other to
// the receiving worker, over their control channels (control.TypeHandOver,
// with a role and a reason). The sender writes batches; the receiver
// answers each with an ack; the sender closes its end when it has nothing
// more to send, and the receiver reads EOF.
//
// One packet is one batch: a binary header (magic, version, sequence
// number, count), then per connection a fixed record (phase, whether it
// has sent a byte yet, how long its current deadline has been running,
// the PROXY client address) and the bytes it had read but not answered —
// at most a partial question, since a worker hands a connection over only
// at a question boundary, after every answer it owes is written. The
// descriptors travel as SCM_RIGHTS in the same packet, index for index:
// the i-th record is the i-th descriptor. At most MaxBatch connections and
// maxPacket bytes per batch.
//
// The ack carries the batch's sequence number and, per connection, Taken
// or the reason it was refused (over --max-connections, over
// --max-connections-per-source, the receiver is stopping, a state it
// cannot serve). The sender closes a connection only after the ack says
// Taken, and keeps serving every refused one: the receiver has closed its
// copy, and not a byte was read from it there. A batch the receiver cannot
// trust (a truncated packet or control message, a descriptor count that
// does not match the records, a malformed header) is refused whole, every
// received descriptor closed.
//
// Invariants:
//   - a connection is served by exactly one process at a time: the sender
//     stops reading it before it sends the batch and, when the ack takes
//     it, closes its descriptor without reading again;
//   - no byte is lost, repeated or reordered: what the sender had read and
//     not answered travels in the record, what it had not read is still in
//     the socket, and what it wrote is already in the socket;
//   - every step has a deadline (the send, the ack, the wait for the next
//     batch) and every length a cap; a channel that breaks or times out
//     fails the batch in flight (the sender closes those connections, since
//     the receiver may have read from them) and nothing else, but for a
//     receiver that closed its end with the batch unread: Linux resets the
//     sender's read of the ack (ECONNRESET) then, the descriptors never
//     reached the receiver, and the sender serves on (ErrNotSent);
//   - a worker that stops refuses every later batch (receiver stopping)
//     and answers its senders until they close, within a bound, before it
//     exits;
//   - descriptors are reached through SyscallConn or as raw ints, never
//     through (*os.File).Fd, which would make a socket blocking for every
//     process sharing it.
//
// Not a public API: this package serves the lancelot binary only.
package handover
