#!/usr/bin/env python3
"""Launcelot server with one thread per client.

Model: the book's next step after the one-client-at-a-time server
(Foundations of Python Network Programming, "Server Architecture": threads,
as in its socketserver/ThreadingMixIn example). It is in this repository as
the plain blocking-I/O design most Python users would reach for.

Framing is the protocol's own, not the book's: whitespace (space, tab, CR,
LF) before a question is skipped, a question ends at '?', several questions
in one read (pipelining) or one question over several reads both work, and
all the answers to one read go out in one sendall. An unknown question gets
the earlier answers, then the connection is closed; so does a fragment
longer than the longest question, which can never become one.

usage: server_threads.py HOST PORT [WORKERS]   (WORKERS is ignored: one process)
"""
import socket
import sys
import threading

ANSWERS = {
    b'What is your name?': b'My name is Sir Lancelot of Camelot.',
    b'What is your quest?': b'To seek the Holy Grail.',
    b'What is your favorite color?': b'Blue.',
}
LONGEST = max(len(q) for q in ANSWERS)


def frame(buf):
    """Answer the complete questions in buf.

    Returns (answers, rest, ok): the answers in order, the bytes to keep
    for the next read, and False when the connection must be closed.
    """
    out = []
    while True:
        buf = buf.lstrip(b' \t\r\n')
        end = buf.find(b'?')
        if end < 0:
            return out, buf, len(buf) < LONGEST
        answer = ANSWERS.get(buf[:end + 1])
        if answer is None:
            return out, b'', False
        out.append(answer)
        buf = buf[end + 1:]


def handle(sock):
    buf, ok = b'', True
    with sock:
        try:
            while ok:
                data = sock.recv(65536)
                if not data:
                    return
                out, buf, ok = frame(buf + data)
                if out:
                    sock.sendall(b''.join(out))
        except OSError:
            return


def main(argv):
    if len(argv) not in (3, 4):
        print('usage: %s HOST PORT [WORKERS]' % argv[0], file=sys.stderr)
        return 2
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((argv[1], int(argv[2])))
    sock.listen(1024)
    print('listening on %s port %s' % (argv[1], argv[2]), flush=True)
    while True:
        client, _ = sock.accept()
        threading.Thread(target=handle, args=(client,), daemon=True).start()


if __name__ == '__main__':
    sys.exit(main(sys.argv))
