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
  mktags URL NAME COUNT [--workers N]
                                 one small image in NAME tagged COUNT times
                                 (t0000000, ...) by N clients (default 8); prints
                                 "<count> <seconds> <manifest digest>"
  ui-session URL USER PASSWORD   sign in to berth's web interface as a browser
                                 does; prints the Cookie header value of the session
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
  mkimage DIR LAYERS LAYER_BYTES [--tag T]
                                 write a new OCI image layout at DIR: LAYERS layers,
                                 each a tar of one file of LAYER_BYTES fresh random
                                 bytes, gzip-framed without compression (level 0),
                                 a config and a manifest tagged T (default v1);
                                 prints "<bytes of all blobs and the manifest>
                                 <manifest digest>"
  push-layout URL NAME TAG DIR   push the image of the OCI layout DIR (its only
                                 manifest) as NAME:TAG, each blob monolithically
                                 (POST, then PUT ?digest= streaming the file);
                                 prints "<bytes> <seconds>"
  pull-image URL NAME TAG        GET the manifest of NAME:TAG, then its config and
                                 layers (bodies read and dropped, sizes checked,
                                 digests not); prints "<bytes> <seconds>"
  concurrent-uploads URL PREFIX N BYTES
                                 N distinct blobs of BYTES, each POST + monolithic
                                 PUT to repository PREFIX<i>, all N in flight at
                                 once; prints "<uploads> <seconds> <in flight>"

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
import tarfile
import threading
import time
import urllib.parse
import zlib

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
CHUNK = 1 << 20  # bytes per read and write on big bodies
TINY_BLOB = b"berth-bench tiny blob\n"


def die(msg):
    print(f"reg.py: {msg}", file=sys.stderr)
    sys.exit(1)


def parse_base(url):
    u = urllib.parse.urlsplit(url)
    if u.scheme not in ("http", "https") or u.hostname != "127.0.0.1" or not u.port:
        die(f"only http(s)://127.0.0.1:<port> targets are allowed, got {url!r}")
    return u.hostname, u.port


def connection(url, timeout, **kwargs):
    """An HTTP connection to URL's host; over TLS for https, trusting the CA
    file named by BENCH_CA_FILE (the harness's own CA)."""
    host, port = parse_base(url)
    if urllib.parse.urlsplit(url).scheme == "https":
        import ssl

        context = ssl.create_default_context(cafile=os.environ.get("BENCH_CA_FILE"))
        return http.client.HTTPSConnection(host, port, timeout=timeout, context=context, **kwargs)
    return http.client.HTTPConnection(host, port, timeout=timeout, **kwargs)


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def basic(userpass):
    return "Basic " + base64.b64encode(userpass.encode()).decode()


class Client:
    def __init__(self, url, auth=None):
        self.url = url
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
                self.conn = connection(self.url, 120, blocksize=CHUNK)
            if hasattr(body, "seek"):
                body.seek(0)  # a file body, sent again after a reconnect
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

    def push_blob_file(self, name, path, digest, size):
        """Monolithic upload of a file: POST a session, then PUT the file as the body."""
        status, resp, body = self.request(
            "POST", f"/v2/{name}/blobs/uploads/", headers={"Content-Length": "0"}
        )
        if status != 202:
            die(f"POST upload to {name}: {status} {body[:300]!r}")
        loc = self.location_path(resp)
        sep = "&" if "?" in loc else "?"
        put = f"{loc}{sep}digest={urllib.parse.quote(digest)}"
        with open(path, "rb") as f:
            status, _, body = self.request(
                "PUT",
                put,
                body=f,
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            )
        if status != 201:
            die(f"PUT {put}: {status} {body[:300]!r}")

    def get_drop(self, path, headers=None):
        """GET path, reading the body in CHUNK pieces and dropping it; returns (status, bytes)."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        self.conn.request("GET", path, headers=headers or {})
        resp = self.conn.getresponse()
        buf = memoryview(bytearray(CHUNK))
        n = 0
        while True:
            k = resp.readinto(buf)
            if not k:
                break
            n += k
        return resp.status, n


def cmd_free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
    s.close()


def cmd_wait(url, secs):
    parse_base(url)
    deadline = time.time() + float(secs)
    while time.time() < deadline:
        try:
            c = connection(url, 2)
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


def cmd_mktags(url, name, count, workers=8):
    """One small image in NAME, tagged COUNT times (t0000000, ...) by
    WORKERS clients; prints the count and the seconds the tags took."""
    count, workers = int(count), int(workers)
    c = Client(url)
    config = b'{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/bin"]}}'
    layer = os.urandom(4096)
    config_digest = c.push_blob(name, config)
    layer_digest = c.push_blob(name, layer)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": len(layer)}],
        },
        separators=(",", ":"),
    ).encode()

    def tag(indices):
        client = Client(url)
        for i in indices:
            status, _, body = client.request(
                "PUT",
                f"/v2/{name}/manifests/t{i:07d}",
                body=manifest,
                headers={"Content-Type": OCI_MANIFEST, "Content-Length": str(len(manifest))},
            )
            if status != 201:
                die(f"PUT manifest tag {i}: {status} {body[:300]!r}")

    t0 = time.monotonic()
    threads = [threading.Thread(target=tag, args=(range(w, count, workers),)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(count, f"{time.monotonic() - t0:.3f}", digest_of(manifest))


def cmd_ui_session(url, user, password):
    """Signs in to berth's web interface as a browser does (the sign-in
    page's CSRF cookie and token, then the form); prints the Cookie header
    value of the session."""
    c = Client(url)
    status, resp, body = c.request("GET", "/ui/sign-in")
    if status != 200:
        die(f"GET /ui/sign-in: {status}")
    csrf_cookie = resp.getheader("Set-Cookie", "").split(";")[0]
    token = re.search(rb'name="csrf" value="([^"]+)"', body).group(1).decode()
    form = urllib.parse.urlencode({"csrf": token, "username": user, "password": password, "next": "/ui/"})
    status, resp, body = c.request(
        "POST",
        "/ui/sign-in",
        body=form.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": csrf_cookie},
    )
    if status != 303:
        die(f"POST /ui/sign-in: {status} {body[:300]!r}")
    session = resp.getheader("Set-Cookie", "").split(";")[0]
    print(f"{csrf_cookie}; {session}")


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

# ---------------------------------------------------------------- images
def _gzip_stored(out, hashes, chunks):
    """Write chunks gzip-framed at level 0 (stored deflate blocks) to out.

    Returns (compressed size, uncompressed sha256). Random data does not
    compress, so level 0 gives the size gzip -1 would, without its CPU cost;
    the gzip magic makes skopeo treat the layer as compressed and send it as
    is instead of compressing it on the way (which would measure gzip).
    """
    z = zlib.compressobj(0, zlib.DEFLATED, 31)
    raw = hashlib.sha256()
    size = 0
    for c in chunks:
        raw.update(c)
        for piece in (z.compress(c), b""):
            out.write(piece)
            hashes.update(piece)
            size += len(piece)
    tail = z.flush()
    out.write(tail)
    hashes.update(tail)
    size += len(tail)
    return size, "sha256:" + raw.hexdigest()


def _tar_chunks(name, nbytes):
    """A tar archive holding one file `name` of nbytes fresh random bytes, in pieces."""
    info = tarfile.TarInfo(name)
    info.size = nbytes
    info.mode = 0o644
    info.mtime = 0
    yield info.tobuf(format=tarfile.PAX_FORMAT)
    left = nbytes
    while left:
        k = min(CHUNK, left)
        yield os.urandom(k)
        left -= k
    if nbytes % 512:
        yield bytes(512 - nbytes % 512)
    yield bytes(1024)  # end of archive


def _write_blob(blobs, data):
    digest = digest_of(data)
    with open(os.path.join(blobs, digest.split(":")[1]), "wb") as f:
        f.write(data)
    return digest


def cmd_mkimage(dirpath, layers, layer_bytes, tag="v1"):
    layers, layer_bytes = int(layers), int(layer_bytes)
    blobs = os.path.join(dirpath, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    descs, diff_ids, total = [], [], 0
    for i in range(layers):
        tmp = os.path.join(blobs, f".layer-{i}.tmp")
        h = hashlib.sha256()
        with open(tmp, "wb") as f:
            size, diff_id = _gzip_stored(f, h, _tar_chunks(f"bench/layer-{i}.bin", layer_bytes))
        digest = "sha256:" + h.hexdigest()
        os.rename(tmp, os.path.join(blobs, h.hexdigest()))
        descs.append({"mediaType": OCI_LAYER_GZIP, "digest": digest, "size": size})
        diff_ids.append(diff_id)
        total += size
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "config": {},
        },
        separators=(",", ":"),
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": _write_blob(blobs, config), "size": len(config)},
            "layers": descs,
        },
        separators=(",", ":"),
    ).encode()
    mdigest = _write_blob(blobs, manifest)
    total += len(config) + len(manifest)
    with open(os.path.join(dirpath, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": mdigest,
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    with open(os.path.join(dirpath, "index.json"), "w") as f:
        json.dump(index, f)
    print(total, mdigest)


def cmd_push_layout(url, name, tag, dirpath):
    with open(os.path.join(dirpath, "index.json")) as f:
        mdesc = json.load(f)["manifests"][0]
    blob = lambda d: os.path.join(dirpath, "blobs", *d.split(":"))  # noqa: E731
    with open(blob(mdesc["digest"]), "rb") as f:
        manifest = f.read()
    m = json.loads(manifest)
    c = Client(url)
    t0 = time.monotonic()
    total = len(manifest)
    for d in [m["config"]] + m["layers"]:
        c.push_blob_file(name, blob(d["digest"]), d["digest"], d["size"])
        total += d["size"]
    status, _, body = c.request(
        "PUT",
        f"/v2/{name}/manifests/{tag}",
        body=manifest,
        headers={"Content-Type": m["mediaType"], "Content-Length": str(len(manifest))},
    )
    if status != 201:
        die(f"PUT manifest {name}:{tag}: {status} {body[:300]!r}")
    print(total, f"{time.monotonic() - t0:.4f}")


def cmd_pull_image(url, name, tag):
    c = Client(url)
    t0 = time.monotonic()
    status, _, manifest = c.request("GET", f"/v2/{name}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
    if status != 200:
        die(f"GET manifest {name}:{tag}: {status} {manifest[:300]!r}")
    m = json.loads(manifest)
    total = len(manifest)
    for d in [m["config"]] + m["layers"]:
        status, n = c.get_drop(f"/v2/{name}/blobs/{d['digest']}")
        if status != 200 or n != d["size"]:
            die(f"GET blob {d['digest']} of {name}: {status} with {n} bytes, expected 200 with {d['size']}")
        total += n
    print(total, f"{time.monotonic() - t0:.4f}")


# ---------------------------------------------------------------- concurrent uploads
def cmd_concurrent_uploads(url, prefix, n, nbytes):
    """N threads, one connection each: POST a session, wait for all, then PUT.

    The bodies are one shared random buffer followed by 64 bytes unique to
    each upload, so every digest differs (no registry can skip a write) while
    the client holds one buffer. Each PUT sends its headers and first CHUNK
    (at most half the body), then waits until all N have done so (or 60 s passed), then streams the
    rest: every upload is open on the server at the same time. Prints the
    number of uploads, the seconds from the first POST to the last 201, and
    how many were in flight together at that point.
    """
    n, nbytes = int(n), int(nbytes)
    host, port = parse_base(url)
    if nbytes < 1024:
        die("concurrent-uploads needs at least 1024 bytes per blob")
    base = memoryview(os.urandom(nbytes - 64))
    h0 = hashlib.sha256(base)
    suffixes = [os.urandom(64) for _ in range(n)]
    digests = []
    for suf in suffixes:
        h = h0.copy()
        h.update(suf)
        digests.append("sha256:" + h.hexdigest())

    sessions_ready = threading.Barrier(n + 1)
    lock = threading.Lock()
    in_body = [0]  # PUTs that have sent their headers and first CHUNK
    together = []  # in_body when the first PUT went on past the wait
    all_in_body = threading.Event()
    errors = []

    def upload(i):
        name = f"{prefix}{i:03d}"
        try:
            c = Client(url)
            status, resp, body = c.request(
                "POST", f"/v2/{name}/blobs/uploads/", headers={"Content-Length": "0"}
            )
            if status != 202:
                raise RuntimeError(f"POST {name}: {status} {body[:200]!r}")
            loc = c.location_path(resp)
            sessions_ready.wait(60)
            sep = "&" if "?" in loc else "?"
            conn = c.conn or http.client.HTTPConnection(host, port, timeout=300)
            conn.putrequest("PUT", f"{loc}{sep}digest={urllib.parse.quote(digests[i])}")
            conn.putheader("Content-Type", "application/octet-stream")
            conn.putheader("Content-Length", str(nbytes))
            conn.endheaders()
            first = min(CHUNK, len(base) // 2)
            conn.send(base[:first])
            with lock:
                in_body[0] += 1
                if in_body[0] == n:
                    all_in_body.set()
            all_in_body.wait(60)
            with lock:
                if not together:
                    together.append(in_body[0])
            for off in range(first, len(base), CHUNK):
                conn.send(base[off : off + CHUNK])
            conn.send(suffixes[i])
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 201:
                raise RuntimeError(f"PUT {name}: {resp.status} {body[:200]!r}")
            conn.close()
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)
            sessions_ready.abort()
            all_in_body.set()

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(n)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    try:
        sessions_ready.wait(60)
    except threading.BrokenBarrierError:
        pass
    for t in threads:
        t.join()
    secs = time.monotonic() - t0
    if errors:
        die(f"{len(errors)} of {n} uploads failed, first: {errors[0]!r}")
    print(n, f"{secs:.4f}", together[0] if together else 0)


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
    elif cmd == "mktags":
        cmd_mktags(*args, **opts)
    elif cmd == "ui-session":
        cmd_ui_session(*args)
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
    elif cmd == "mkimage":
        cmd_mkimage(*args, tag=opts.get("tag", "v1"))
    elif cmd == "push-layout":
        cmd_push_layout(*args)
    elif cmd == "pull-image":
        cmd_pull_image(*args)
    elif cmd == "concurrent-uploads":
        cmd_concurrent_uploads(*args)
    else:
        die(f"unknown command {cmd!r}\n{__doc__}")


if __name__ == "__main__":
    main(sys.argv[1:])
