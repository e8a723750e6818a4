#!/usr/bin/env python3
"""Memory of a berth server under authentication abuse (standard library only).

Each subcommand drives a running berth with access control on and prints what
the server's resident memory (VmRSS and its peak VmHWM, from /proc/PID/status)
was after each stage, one line a stage:

    <stage> <VmRSS kB> <VmHWM kB> <seconds> <HTTP statuses seen, e.g. 200x1000>

Numbers only: no thresholds (bench/run.sh and BENCHMARKS.md read them).

Subcommands:
  password-rss URL PID --basic ADMIN:PASSWORD [--checks N] [--workers W]
        creates N users through the admin API (one argon2id hash each), then
        N successful password logins at /token (one per user, so no check is
        answered from the 60 s verified-password cache), then N failed ones
        (each user's wrong password), W requests in flight. The failures come
        from 127.0.0.2 and up, 8 per source address, below the per-address
        failure limits, so that every one is a real password check.
        Defaults: N=1000, W=8.
  token-cache-rss URL PID --basic USER:PASSWORD [--tokens T] [--scopes S] [--workers W]
        as a logged-in user, T distinct tokens, each asked for S repository
        scopes (`repository:<user>/cache-<t>-<s>:pull`), each used once at the
        gate (GET /v2/, which verifies it and caches the verification).
        Defaults: T=600, S=100 (the most one token request may ask for), W=4.

Only 127.0.0.1 targets are accepted (the failures' source addresses are other
loopback addresses, 127.0.0.2 and up, which Linux routes to 127.0.0.1).
"""

import http.client
import json
import os
import secrets
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import procwatch  # noqa: E402
import reg  # noqa: E402

FAILURES_PER_ADDRESS = 8  # below every per-address failure limit berth has had


def die(msg):
    print(f"auth_abuse.py: {msg}", file=sys.stderr)
    sys.exit(1)


class Conn:
    """A keep-alive connection from a chosen loopback source address."""

    def __init__(self, url, source="127.0.0.1"):
        self.host, self.port = reg.parse_base(url)
        self.source = source
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(
                    self.host, self.port, timeout=120, source_address=(self.source, 0)
                )
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return resp.status, data
            except (http.client.HTTPException, ConnectionError, TimeoutError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


def service_of(url):
    """The `service` of berth's Bearer challenge, and the token path."""
    status, resp, _ = reg.Client(url).request("GET", "/v2/")
    if status != 401:
        die(f"GET {url}/v2/ answered {status}, not 401: is access control on?")
    params = reg.challenge_params(resp.getheader("WWW-Authenticate", ""))
    realm = urllib.parse.urlsplit(params.get("realm", ""))
    reg.parse_base(f"{realm.scheme}://{realm.netloc}")
    return params.get("service", ""), realm.path


def parallel(jobs, workers, run):
    """Runs run(conns, job) for every job on `workers` threads; returns
    (seconds, {status: count}). `conns` is the thread's own dict of Conns."""
    lock = threading.Lock()
    todo = list(reversed(jobs))
    counts = {}
    errors = []

    def worker():
        conns = {}
        while True:
            with lock:
                if not todo or errors:
                    return
                job = todo.pop()
            try:
                status = run(conns, job)
            except Exception as e:  # noqa: BLE001 (reported below)
                with lock:
                    errors.append(repr(e))
                return
            with lock:
                counts[status] = counts.get(status, 0) + 1

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        die(f"a request failed: {errors[0]}")
    return time.monotonic() - t0, counts


def report(stage, pid, secs=0.0, counts=None):
    rss, hwm = procwatch.status(pid)
    seen = ",".join(f"{s}x{n}" for s, n in sorted((counts or {}).items())) or "-"
    print(f"{stage} {rss} {hwm} {secs:.2f} {seen}", flush=True)


def conn_for(conns, url, source="127.0.0.1"):
    """The thread's connection from `source`; one open at a time per thread,
    so that the server's memory is not that of idle connections."""
    if source not in conns:
        for old in conns.values():
            if old.conn is not None:
                old.conn.close()
        conns.clear()
        conns[source] = Conn(url, source)
    return conns[source]


def cmd_password_rss(url, pid, creds, checks=1000, workers=8):
    checks, workers = int(checks), int(workers)
    admin = {"Authorization": reg.basic(creds)}
    service, token_path = service_of(url)
    report("fresh", pid)
    run_id = secrets.token_hex(3)
    users = [(f"pwbench-{run_id}-{i:05d}", secrets.token_urlsafe(18)) for i in range(checks)]

    def create(conns, user):
        body = json.dumps({"name": user[0], "password": user[1]}).encode()
        headers = dict(admin, **{"Content-Type": "application/json"})
        status, data = conn_for(conns, url).request("POST", "/api/v1/users", body, headers)
        if status != 201:
            raise RuntimeError(f"creating {user[0]}: {status} {data[:200]!r}")
        return status

    secs, counts = parallel(users, workers, create)
    report(f"after-{checks}-user-creations", pid, secs, counts)

    query = urllib.parse.urlencode({"service": service})

    def login(conns, job):
        (name, password), source = job
        headers = {"Authorization": reg.basic(f"{name}:{password}")}
        status, _ = conn_for(conns, url, source).request(
            "GET", f"{token_path}?{query}", headers=headers
        )
        return status

    ok = [(user, "127.0.0.1") for user in users]
    secs, counts = parallel(ok, workers, login)
    report(f"after-{checks}-successful-checks", pid, secs, counts)

    def source(i):
        n = 2 + i // FAILURES_PER_ADDRESS
        return f"127.0.{n // 254}.{n % 254 + 1}" if n >= 254 else f"127.0.0.{n}"

    bad = [((name, password + "-wrong"), source(i)) for i, (name, password) in enumerate(users)]
    secs, counts = parallel(bad, workers, login)
    report(f"after-{checks}-failed-checks", pid, secs, counts)
    time.sleep(2)
    report("idle-2s-later", pid)


def cmd_token_cache_rss(url, pid, creds, tokens=600, scopes=100, workers=4):
    tokens, scopes, workers = int(tokens), int(scopes), int(workers)
    user = creds.split(":", 1)[0]
    service, token_path = service_of(url)
    auth = {"Authorization": reg.basic(creds)}
    run_id = secrets.token_hex(3)
    report("fresh", pid)

    def one(conns, t):
        params = [("service", service)]
        params += [("scope", f"repository:{user}/cache-{run_id}-{t}-{s}:pull") for s in range(scopes)]
        c = conn_for(conns, url)
        status, data = c.request("GET", f"{token_path}?{urllib.parse.urlencode(params)}", headers=auth)
        if status != 200:
            raise RuntimeError(f"token {t}: {status} {data[:300]!r}")
        token = json.loads(data)["token"]
        status, data = c.request("GET", "/v2/", headers={"Authorization": f"Bearer {token}"})
        if status != 200:
            raise RuntimeError(f"GET /v2/ with token {t} ({len(token)} bytes): {status} {data[:300]!r}")
        return status

    step = max(tokens // 6, 1)
    done = 0
    total_secs = 0.0
    totals = {}
    while done < tokens:
        batch = list(range(done, min(done + step, tokens)))
        secs, counts = parallel(batch, workers, one)
        total_secs += secs
        for s, n in counts.items():
            totals[s] = totals.get(s, 0) + n
        done += len(batch)
        report(f"after-{done}-tokens-of-{scopes}-scopes", pid, total_secs, totals)


def main(argv):
    if not argv:
        die(__doc__)
    cmd, rest = argv[0], argv[1:]
    args, opts = [], {}
    while rest:
        if rest[0].startswith("--") and len(rest) >= 2:
            opts[rest[0][2:]] = rest[1]
            rest = rest[2:]
        else:
            args.append(rest.pop(0))
    creds = opts.pop("basic", None)
    if not creds or ":" not in creds:
        die("--basic USER:PASSWORD is required")
    if cmd == "password-rss":
        cmd_password_rss(*args, creds, **opts)
    elif cmd == "token-cache-rss":
        cmd_token_cache_rss(*args, creds, **opts)
    else:
        die(f"unknown command {cmd!r}\n{__doc__}")


if __name__ == "__main__":
    main(sys.argv[1:])
