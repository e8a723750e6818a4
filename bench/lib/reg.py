#!/usr/bin/env python3
"""Small OCI registry client for the benchmark harness (standard library only).

Subcommands:
  free-port                      print a free TCP port on 127.0.0.1
  wait URL SECS                  wait until GET URL/v2/ answers (any HTTP status)
  push-image URL NAME TAG [--auth VALUE]
                                 push config + 1 MiB layer + OCI manifest, sending
                                 `Authorization: VALUE` on every request if given;
                                 prints "<layer digest> <manifest digest>"
  mkrepos URL PREFIX START COUNT [--workers N]
                                 create repositories PREFIX<i> (i zero-padded to 7
                                 digits) by pushing one tiny blob to each, over
                                 keep-alive connections; prints "<count> <seconds>"
  upload-url URL NAME            POST a new upload session, print its absolute Location
  token-url URL SCOPE            the token request for SCOPE, from the Bearer challenge
                                 of GET URL/v2/: "<realm>?service=<service>&scope=<SCOPE>"
  token URL SCOPE [--basic USER:PASSWORD]
                                 get a token for SCOPE from that URL (anonymously
                                 without --basic); prints the token
  access TOKEN                   print the `access` claim of a JWT, one
                                 "<type>:<name>:<actions>" a line (not verified)
  api URL METHOD PATH [BODY] --basic USER:PASSWORD [--field F]
                                 call the admin API with a JSON body; prints the
                                 answer, or its field F; non-2xx is an error

Only 127.0.0.1 targets are accepted.
"""

import base64
import hashlib
import http.client
import json
import multiprocessing
import os
import re
import socket
import sys
import threading
import time
import urllib.parse

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
TINY_BLOB = b"berth-bench tiny blob\n"


def die(msg):
    print(f"reg.py: {msg}", file=sys.stderr)
    sys.exit(1)


def parse_base(url):
    u = urllib.parse.urlsplit(url)
    if u.scheme != "http" or u.hostname != "127.0.0.1" or not u.port:
        die(f"only http://127.0.0.1:<port> targets are allowed, got {url!r}")
    return u.hostname, u.port


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def basic(userpass):
    return "Basic " + base64.b64encode(userpass.encode()).decode()


class Client:
    def __init__(self, url, auth=None):
        self.host, self.port = parse_base(url)
        self.conn = None
        self.auth = auth  # an Authorization header value sent with every request

    def request(self, method, path, body=None, headers=None):
        """One request on a keep-alive connection (reconnects once on a dropped one)."""
        headers = dict(headers or {})
        if self.auth:
            headers["Authorization"] = self.auth
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return resp.status, resp, data
            except (http.client.HTTPException, ConnectionError, socket.timeout):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def location_path(self, resp):
        loc = resp.getheader("Location")
        if not loc:
            die("upload response without Location")
        u = urllib.parse.urlsplit(loc)
        if u.hostname not in (None, "127.0.0.1"):
            die(f"refusing to follow Location to {u.hostname}")
        return u.path + (("?" + u.query) if u.query else "")

    def push_blob(self, name, data, mount_from=None):
        digest = digest_of(data)
        path = f"/v2/{name}/blobs/uploads/"
        if mount_from:
            path += f"?mount={digest}&from={mount_from}"
        status, resp, body = self.request("POST", path, headers={"Content-Length": "0"})
        if status == 201:
            return digest
        if status != 202:
            die(f"POST {path}: {status} {body[:300]!r}")
        loc = self.location_path(resp)
        sep = "&" if "?" in loc else "?"
        put = f"{loc}{sep}digest={urllib.parse.quote(digest)}"
        status, _, body = self.request(
            "PUT",
            put,
            body=data,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(len(data)),
            },
        )
        if status != 201:
            die(f"PUT {put}: {status} {body[:300]!r}")
        return digest


def cmd_free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
    s.close()


def cmd_wait(url, secs):
    host, port = parse_base(url)
    deadline = time.time() + float(secs)
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection(host, port, timeout=2)
            c.request("GET", "/v2/")
            c.getresponse().read()
            return
        except OSError:
            time.sleep(0.05)
    die(f"{url} did not answer within {secs} s")


def cmd_push_image(url, name, tag, auth=None):
    c = Client(url, auth)
    layer = os.urandom(1 << 20)
    layer_digest = digest_of(layer)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
            "config": {},
        },
        separators=(",", ":"),
    ).encode()
    config_digest = c.push_blob(name, config)
    c.push_blob(name, layer)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": len(layer)}],
        },
        separators=(",", ":"),
    ).encode()
    status, _, body = c.request(
        "PUT",
        f"/v2/{name}/manifests/{tag}",
        body=manifest,
        headers={"Content-Type": OCI_MANIFEST, "Content-Length": str(len(manifest))},
    )
    if status != 201:
        die(f"PUT manifest: {status} {body[:300]!r}")
    print(layer_digest, digest_of(manifest))


def repo_name(prefix, i):
    return f"{prefix}{i:07d}"


def _mk_worker(args):
    url, prefix, indices, seed = args
    c = Client(url)
    for i in indices:
        # Cross-repository mount of the tiny blob from the seed repository; a
        # registry that declines the mount answers 202 and gets the bytes.
        c.push_blob(repo_name(prefix, i), TINY_BLOB, mount_from=seed)
    return len(indices)


def _mk_process(args):
    url, prefix, indices, seed, threads = args
    chunks = [indices[t::threads] for t in range(threads)]
    errors = []

    def run(chunk):
        try:
            _mk_worker((url, prefix, chunk, seed))
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    ts = [threading.Thread(target=run, args=(ch,)) for ch in chunks if ch]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} worker(s) failed: {errors[0]!r}")
    return len(indices)


def cmd_mkrepos(url, prefix, start, count, workers=16):
    start, count, workers = int(start), int(count), int(workers)
    parse_base(url)
    seed = f"{prefix}seed"
    Client(url).push_blob(seed, TINY_BLOB)
    indices = list(range(start, start + count))
    procs = max(1, min(4, workers // 4))
    threads = max(1, workers // procs)
    parts = [(url, prefix, indices[p::procs], seed, threads) for p in range(procs)]
    t0 = time.monotonic()
    with multiprocessing.Pool(procs) as pool:
        done = sum(pool.map(_mk_process, parts))
    print(done, f"{time.monotonic() - t0:.3f}")


def cmd_upload_url(url, name):
    c = Client(url)
    status, resp, body = c.request(
        "POST", f"/v2/{name}/blobs/uploads/", headers={"Content-Length": "0"}
    )
    if status != 202:
        die(f"POST upload: {status} {body[:300]!r}")
    print(f"http://{c.host}:{c.port}{c.location_path(resp)}")


def challenge_params(value):
    """The parameters of a `Bearer k="v",...` challenge."""
    scheme, _, rest = value.partition(" ")
    if scheme.lower() != "bearer":
        die(f"expected a Bearer challenge, got {value!r}")
    return dict(re.findall(r'(\w+)="([^"]*)"', rest))


def cmd_token_url(url, scope, quiet=False):
    c = Client(url)
    status, resp, _ = c.request("GET", "/v2/")
    if status != 401:
        die(f"GET {url}/v2/ answered {status}, not 401: is access control on?")
    params = challenge_params(resp.getheader("WWW-Authenticate", ""))
    realm = params.get("realm", "")
    parse_base(realm)  # the token service must be on 127.0.0.1 too
    q = urllib.parse.urlencode({"service": params.get("service", ""), "scope": scope}, safe=":/,")
    out = f"{realm}?{q}"
    if not quiet:
        print(out)
    return out


def cmd_token(url, scope, basic_creds=None):
    token_url = cmd_token_url(url, scope, quiet=True)
    u = urllib.parse.urlsplit(token_url)
    c = Client(token_url, basic(basic_creds) if basic_creds else None)
    status, _, body = c.request("GET", f"{u.path}?{u.query}")
    if status != 200:
        die(f"GET {token_url}: {status} {body[:300]!r}")
    print(json.loads(body)["token"])


def cmd_access(token):
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    for a in claims.get("access") or []:
        print(f"{a['type']}:{a['name']}:{','.join(a.get('actions') or [])}")


def cmd_api(url, method, path, body="", creds=None, field=None):
    if not creds:
        die("api needs --basic USER:PASSWORD")
    c = Client(url, basic(creds))
    data = body.encode()
    headers = {"Content-Length": str(len(data))}
    if data:
        headers["Content-Type"] = "application/json"
    status, _, answer = c.request(method, path, body=data or None, headers=headers)
    if not 200 <= status < 300:
        die(f"{method} {path}: {status} {answer[:300]!r}")
    if field:
        print(json.loads(answer)[field])
    elif answer:
        print(answer.decode())


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
    if cmd == "free-port":
        cmd_free_port()
    elif cmd == "wait":
        cmd_wait(*args)
    elif cmd == "push-image":
        cmd_push_image(*args, auth=opts.get("auth"))
    elif cmd == "mkrepos":
        cmd_mkrepos(*args, **opts)
    elif cmd == "upload-url":
        cmd_upload_url(*args)
    elif cmd == "token-url":
        cmd_token_url(*args)
    elif cmd == "token":
        cmd_token(*args, basic_creds=opts.get("basic"))
    elif cmd == "access":
        cmd_access(*args)
    elif cmd == "api":
        cmd_api(*args, creds=opts.get("basic"), field=opts.get("field"))
    else:
        die(f"unknown command {cmd!r}\n{__doc__}")


if __name__ == "__main__":
    main(sys.argv[1:])
