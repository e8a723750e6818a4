#!/usr/bin/env python3
"""Clients that hold connections without using them, and a latency probe
(standard library only). Loopback targets only.

Subcommands:
  hold URL MODE N SECONDS
        keeps N connections to URL open for SECONDS, reopening any the server
        closes: MODE `idle` sends nothing; MODE `slowloris` sends a request
        head one byte per second that never ends. Prints, when done:
        `<opened> <closed by the server> <refused or failed to connect>`.
  latency URL N [--timeout S]
        N sequential `GET /v2/`, each on a new connection (as a newcomer
        arrives while the server is under pressure). Prints
        `<median ms> <p99 ms> <failed>`; a request that gets no answer within
        S seconds (default 5) counts as failed, with S as its time.
"""

import selectors
import socket
import sys
import time
import urllib.parse


def target(url):
    parts = urllib.parse.urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"connections.py: only loopback targets, not {parts.hostname}")
    return parts.hostname, parts.port or 80


def hold(url, mode, n, seconds):
    host, port = target(url)
    head = f"GET /v2/ HTTP/1.1\r\nHost: {host}:{port}\r\nX-Slow: ".encode() + b"a" * 100000
    sel = selectors.DefaultSelector()
    progress = {}  # socket -> bytes of `head` sent
    opened = closed = failed = 0

    def connect():
        nonlocal opened, failed
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect_ex((host, port))
        except OSError:
            failed += 1
            s.close()
            return
        sel.register(s, selectors.EVENT_READ)
        progress[s] = 0
        opened += 1

    def drop(s):
        sel.unregister(s)
        progress.pop(s, None)
        s.close()

    end = time.monotonic() + seconds
    next_tick = time.monotonic()
    while time.monotonic() < end:
        while len(progress) < n:
            before = len(progress)
            connect()
            if len(progress) == before:
                break
        timeout = max(0.0, min(next_tick, end) - time.monotonic())
        for key, _ in sel.select(timeout):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:  # closed by the server (or reset)
                closed += 1
                drop(s)
        if time.monotonic() >= next_tick:
            next_tick += 1.0
            if mode == "slowloris":
                for s in list(progress):
                    i = progress[s]
                    try:
                        s.send(head[i:i + 1])
                        progress[s] = i + 1
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError:
                        closed += 1
                        drop(s)
    for s in list(progress):
        drop(s)
    print(opened, closed, failed)


def latency(url, n, timeout):
    host, port = target(url)
    request = f"GET /v2/ HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
    times, failed = [], 0
    for _ in range(n):
        started = time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=timeout) as s:
                s.settimeout(max(0.001, timeout - (time.monotonic() - started)))
                s.sendall(request)
                if not s.recv(12).startswith(b"HTTP/1.1 "):
                    raise OSError("not an HTTP answer")
            times.append(time.monotonic() - started)
        except OSError:
            failed += 1
            times.append(timeout)
    times.sort()
    median = times[len(times) // 2] * 1000
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))] * 1000
    print(f"{median:.2f} {p99:.2f} {failed}")


def main():
    args = sys.argv[1:]
    if len(args) == 5 and args[0] == "hold" and args[2] in ("idle", "slowloris"):
        hold(args[1], args[2], int(args[3]), float(args[4]))
    elif len(args) >= 3 and args[0] == "latency":
        timeout = 5.0
        if len(args) == 5 and args[3] == "--timeout":
            timeout = float(args[4])
        latency(args[1], int(args[2]), timeout)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
