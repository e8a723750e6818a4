#!/usr/bin/env python3
"""A network link between two loopback servers, for the bench.

    link.py LISTEN_PORT TARGET_HOST:TARGET_PORT RATE_MBIT DELAY_MS

Relays every TCP connection made to 127.0.0.1:LISTEN_PORT to the target,
carrying at most RATE_MBIT megabits per second in each direction, shared by
all connections (one link), and holding each byte DELAY_MS milliseconds one
way. A pull-through cache's upstream is another registry across a network;
on loopback it is as fast as memory, which no upstream is. Both the direct
pull and the caches' fetches go through the same link.

Prints "ready" once listening.
"""

import asyncio
import sys
import time

READ = 256 * 1024
# Reads in flight per direction of a connection: enough for the rate times
# the delay (2.5 Gbit/s x 20 ms is 6 MiB), bounded so the link holds back
# rather than buffering a whole blob.
QUEUE = 64


# The link's bytes leave in bursts of at most this long at its rate: a
# timer per read (a quarter of a millisecond at 2.5 Gbit/s) would cap the
# link at the event loop's timer resolution instead.
BURST = 0.005


class Direction:
    """One direction of the link: a byte leaves when the link is free."""

    def __init__(self, rate_bytes):
        self.rate = rate_bytes
        self.free_at = 0.0

    async def send(self, n):
        now = time.monotonic()
        self.free_at = max(self.free_at, now) + n / self.rate
        if self.free_at - now > BURST:
            await asyncio.sleep(self.free_at - now - BURST)


async def pump(reader, writer, direction, delay):
    queue = asyncio.Queue(QUEUE)

    async def receive():
        while True:
            data = await reader.read(READ)
            await queue.put((time.monotonic() + delay, data))
            if not data:
                return

    async def deliver():
        while True:
            due, data = await queue.get()
            if not data:
                break
            wait = due - time.monotonic()
            if wait > 0.0005:
                await asyncio.sleep(wait)
            await direction.send(len(data))
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    receiving = asyncio.ensure_future(receive())
    try:
        await deliver()
    finally:
        receiving.cancel()


async def main():
    listen = int(sys.argv[1])
    host, port = sys.argv[2].rsplit(":", 1)
    rate = float(sys.argv[3]) * 1e6 / 8
    delay = float(sys.argv[4]) / 1000
    up, down = Direction(rate), Direction(rate)

    async def connection(client_r, client_w):
        try:
            server_r, server_w = await asyncio.open_connection(host, int(port))
        except OSError:
            client_w.close()
            return
        try:
            await asyncio.gather(
                pump(client_r, server_w, up, delay),
                pump(server_r, client_w, down, delay),
            )
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            for w in (client_w, server_w):
                w.close()

    server = await asyncio.start_server(connection, "127.0.0.1", listen)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
