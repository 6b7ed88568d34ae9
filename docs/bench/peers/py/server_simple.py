#!/usr/bin/env python3
"""The book's first Launcelot server, as it is: one client at a time.

Model: server_simple.py (with its launcelot.py helpers) from Foundations of
Python Network Programming, chapter "Server Architecture". It is in this
repository as the baseline the book itself starts from, so the benchmarks
show what each later design buys.

Kept from the book on purpose:
- a blocking accept loop that serves one connection until it closes; every
  other client waits in the listen backlog meanwhile;
- framing by "receive until the buffer ends with '?'", then look the whole
  buffer up as one question. Pipelined questions ("...?...?" in one read)
  are therefore not a known question: the lookup raises KeyError and, as in
  the book, the exception ends the server. So does an unknown question.

One change: leading whitespace (space, tab, CR, LF) is stripped before the
lookup, because the protocol allows it between questions.

usage: server_simple.py HOST PORT [WORKERS]   (WORKERS is ignored: one process)
"""
import sys

from launcelot import address, listen

QADICT = {
    b'What is your name?': b'My name is Sir Lancelot of Camelot.',
    b'What is your quest?': b'To seek the Holy Grail.',
    b'What is your favorite color?': b'Blue.',
}


def recv_until(sock, suffix):
    """Receive from sock until the bytes received end with suffix."""
    message = sock.recv(4096)
    if not message:
        raise EOFError('socket closed')
    while not message.endswith(suffix):
        data = sock.recv(4096)
        if not data:
            raise EOFError('received %r then socket closed' % message)
        message += data
    return message


def handle_client(client_sock):
    try:
        while True:
            question = recv_until(client_sock, b'?').lstrip(b' \t\r\n')
            answer = QADICT[question]  # KeyError ends the server, as in the book
            client_sock.sendall(answer)
    except EOFError:
        client_sock.close()


def main(argv):
    addr = address(argv)
    if addr is None:
        return 2
    sock = listen(*addr, backlog=128)
    while True:
        client_sock, _ = sock.accept()
        handle_client(client_sock)


if __name__ == '__main__':
    sys.exit(main(sys.argv))
