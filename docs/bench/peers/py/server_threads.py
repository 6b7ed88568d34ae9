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
import sys
import threading

from launcelot import address, frame, listen

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
    addr = address(argv)
    if addr is None:
        return 2
    sock = listen(*addr, backlog=1024)
    while True:
        client, _ = sock.accept()
        threading.Thread(target=handle, args=(client,), daemon=True).start()


if __name__ == '__main__':
    sys.exit(main(sys.argv))
