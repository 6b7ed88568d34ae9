"""What the Python reference servers share, as the book's servers share
zen_utils.py: the protocol's table, its framing, and the command line.

usage of every server: server_*.py HOST PORT [WORKERS]
(WORKERS is ignored: each is one process)
"""
import socket
import sys

ANSWERS = {
    b'What is your name?': b'My name is Sir Lancelot of Camelot.',
    b'What is your quest?': b'To seek the Holy Grail.',
    b'What is your favorite color?': b'Blue.',
}
LONGEST = max(len(q) for q in ANSWERS)


def frame(buf):
    """Answer the complete questions in buf.

    Whitespace (space, tab, CR, LF) before a question is skipped, and a
    question ends at '?'. Returns (answers, rest, ok): the answers in
    order, the bytes to keep for the next read, and False when the
    connection must be closed (an unknown question, or a fragment longer
    than the longest question, which can never become one).
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


def address(argv):
    """(HOST, PORT) from the command line, or None after printing usage."""
    if len(argv) not in (3, 4):
        print('usage: %s HOST PORT [WORKERS]' % argv[0], file=sys.stderr)
        return None
    return argv[1], int(argv[2])


def listen(host, port, backlog):
    """A listening TCP socket on host:port, announced on stdout."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    print('listening on %s port %d' % (host, port), flush=True)
    return sock
