#!/usr/bin/env python3
"""Launcelot server on asyncio: one process, one thread, an event loop.

Model: event-driven Python, the book's answer to "one thread per client"
(Foundations of Python Network Programming, "Server Architecture", there
with poll() and Twisted; asyncio is today's standard library form). It is in
this repository as the fastest design plain Python offers.

It uses asyncio's low-level Protocol API (data_received callbacks), not
streams, as a server written for speed would. Framing is the protocol's own:
whitespace (space, tab, CR, LF) before a question is skipped, a question
ends at '?', pipelined and split questions both work, and the answers to
one read go out in one write. An unknown question gets the earlier answers,
then the connection is closed; so does a fragment longer than the longest
question.

usage: server_async.py HOST PORT [WORKERS]   (WORKERS is ignored: one process)
"""
import asyncio
import sys

from launcelot import address, frame

class Launcelot(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buf = b''

    def data_received(self, data):
        out, self.buf, ok = frame(self.buf + data)
        if out:
            self.transport.write(b''.join(out))
        if not ok:
            self.transport.close()  # sends what was written first


async def serve(host, port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Launcelot, host, port, backlog=1024)
    print('listening on %s port %d' % (host, port), flush=True)
    async with server:
        await server.serve_forever()


def main(argv):
    addr = address(argv)
    if addr is None:
        return 2
    try:
        asyncio.run(serve(*addr))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
