#!/usr/bin/env python3
"""A tiny Launcelot client that checks a server's answers byte for byte.

It is check.sh's client: each CHECK opens one connection, sends questions in
a given way and compares every byte that comes back with the protocol's
table. Prints "ok CHECK" or "FAIL CHECK: ..." and exits 0 or 1.

usage: client.py HOST PORT CHECK...

checks:
  one         the three questions one by one, each answer awaited
  pipelined   the three questions in one write
  bytes       the three questions one byte per write, each answer awaited
              (split reads, without pipelining)
  space       one by one, each after space, tab, CR and LF
  unknown     a question, then (after its answer) an unknown one: the
              server must close the connection
  unknown-pipelined
              a question, an unknown one and another question in one write:
              the first answer only, then the server must close
"""
import socket
import sys
import time

TABLE = [
    (b'What is your name?', b'My name is Sir Lancelot of Camelot.'),
    (b'What is your quest?', b'To seek the Holy Grail.'),
    (b'What is your favorite color?', b'Blue.'),
]
UNKNOWN = b'What is the capital of Assyria?'
TIMEOUT = 5.0


class Fail(Exception):
    pass


def recv_exactly(sock, n):
    got = b''
    while len(got) < n:
        data = sock.recv(n - len(got))
        if not data:
            break
        got += data
    return got


def expect(sock, want):
    got = recv_exactly(sock, len(want))
    if got != want:
        raise Fail('got %r, want %r' % (got, want))


def expect_close(sock):
    """The server must close: EOF (or a reset), and no more bytes."""
    try:
        extra = sock.recv(4096)
    except socket.timeout:
        raise Fail('connection still open after %gs' % TIMEOUT)
    except ConnectionResetError:
        return
    if extra:
        raise Fail('got %r, want the connection closed' % extra)


def check(sock, name):
    questions = b''.join(q for q, _ in TABLE)
    answers = b''.join(a for _, a in TABLE)
    if name == 'one':
        for q, a in TABLE:
            sock.sendall(q)
            expect(sock, a)
    elif name == 'pipelined':
        sock.sendall(questions)
        expect(sock, answers)
    elif name == 'bytes':
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for q, a in TABLE:
            for i in range(len(q)):
                sock.sendall(q[i:i + 1])
                time.sleep(0.001)  # so that reads are split, not coalesced
            expect(sock, a)
    elif name == 'space':
        for q, a in TABLE:
            sock.sendall(b' \t\r\n' + q)
            expect(sock, a)
    elif name == 'unknown':
        sock.sendall(TABLE[0][0])
        expect(sock, TABLE[0][1])
        sock.sendall(UNKNOWN)
        expect_close(sock)
    elif name == 'unknown-pipelined':
        sock.sendall(TABLE[0][0] + UNKNOWN + TABLE[1][0])
        expect(sock, TABLE[0][1])
        expect_close(sock)
    else:
        raise Fail('no such check')


def main(argv):
    if len(argv) < 4:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    host, port, failed = argv[1], int(argv[2]), False
    for name in argv[3:]:
        try:
            with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
                check(sock, name)
            print('ok', name)
        except (Fail, OSError) as e:
            print('FAIL %s: %s' % (name, e))
            failed = True
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
