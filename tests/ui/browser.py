#!/usr/bin/env python3
"""The web interface's end-to-end suite: one headless Chromium (Selenium,
/usr/bin/chromium and /usr/bin/chromedriver) against one `berth serve`
started by tests/ui/run.sh (run it as `bash tests/ui/run.sh`; CI does from
.ci/test). The steps run in order in this one process, each printing a PASS
or FAIL line, and the last line counts them.

What it pins, with exact statuses and visible text:
   1. signing in with the keyboard only; the explore page and its search;
   2. a repository, its tags, an image's manifest page (layers with sizes,
      entrypoint, environment with secrets hidden, labels), an index's
      platforms and the pages they link to;
   3. the Copy buttons put `docker pull HOST/NAME:TAG` on the clipboard;
   4. a personal access token created on the account page (secret shown
      once) works at /token and /v2, and is refused once revoked there;
   5. a password change ends this session and every other one; the old
      password no longer signs in, the new one does;
   6. signing out ends the session server-side (its cookie replayed fails);
   7. a private repository reads exactly as a missing one (404, same page)
      to anonymous visitors and to users who may not pull it; the explore
      page shows anonymous visitors the public repositories only;
   8. forms without the CSRF field, or with a wrong one, are refused (403)
      and change nothing;
   9. security headers on every page and redirect the browser and this
      script fetched; cookie flags; no CSP violation or script error in the
      console (checked after every page load);
  10. no horizontal overflow in a 390 px wide window (a long repository
      name and tag included), and a dark scheme;
  11. an organisation's owner adds a member and a robot; a plain member
      gets no forms and is refused (403) when posting one anyway;
  12. the administration page (users, keys, rotation) for an administrator
      only (403 otherwise, and no Admin link);
  13. screenshots of every kind of page, in target/ui-screenshots/.

Images are made here (an OCI layout written by this script, pushed by
skopeo; an artifact pushed by `berth push`): no network is needed.

Environment (run.sh sets it): BERTH_UI_URL (http://127.0.0.1:PORT),
BERTH_UI_ADMIN_PASSWORD, BERTH (the binary), BERTH_UI_WORK (a scratch
directory), BERTH_UI_SCREENSHOTS (default target/ui-screenshots).
"""

import base64
import datetime
import gzip
import hashlib
import http.client
import io
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
import traceback
import urllib.parse

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
URL = os.environ["BERTH_UI_URL"].rstrip("/")
HOST = URL.removeprefix("http://")
HOSTNAME, PORT = HOST.rsplit(":", 1)
assert HOSTNAME == "127.0.0.1", "the suite only targets loopback"
ADMIN_PW = os.environ["BERTH_UI_ADMIN_PASSWORD"]
BERTH = os.environ.get("BERTH", os.path.join(ROOT, "target", "debug", "berth"))
WORK = os.environ["BERTH_UI_WORK"]
SHOTS = os.environ.get("BERTH_UI_SCREENSHOTS", os.path.join(ROOT, "target", "ui-screenshots"))

PASSWORDS = {
    "admin": ADMIN_PW,
    "alice": "alice-pass-1",
    "bob": "bob-pass-12",
    "carol": "carol-pass-1",
    "dave": "dave-pass-12",
}
ALICE_NEW_PW = "alice-pass-2"
NARROW = (390, 844)
WIDE = (1280, 900)

# Security headers every page must carry (checked on every /ui answer).
SECURITY_CHECKED = []  # (method or kind, url, status)

class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)


def equal(got, want, what):
    check(got == want, f"{what}: got {got!r}, expected {want!r}")


def is_ui(url):
    path = urllib.parse.urlsplit(url).path or "/"
    return path == "/" or path == "/ui" or path.startswith("/ui/")


def header(headers, name):
    """A header's value from a dict (any case) or an email.message.Message."""
    if hasattr(headers, "get_all"):
        values = headers.get_all(name) or []
        return ", ".join(values) if values else None
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


def check_security_headers(url, status, headers, kind):
    """The headers of every web-interface answer (CSP, nosniff, referrer)."""
    where = f"{kind} {url} ({status})"
    csp = header(headers, "Content-Security-Policy")
    check(csp is not None, f"{where}: no Content-Security-Policy header")
    check("script-src 'self'" in csp, f"{where}: CSP without script-src 'self': {csp}")
    check("frame-ancestors 'none'" in csp, f"{where}: CSP without frame-ancestors 'none': {csp}")
    check("unsafe-inline" not in csp and "unsafe-eval" not in csp,
          f"{where}: CSP allows unsafe-inline/unsafe-eval: {csp}")
    equal((header(headers, "X-Content-Type-Options") or "").lower(), "nosniff",
          f"{where}: X-Content-Type-Options")
    referrer = header(headers, "Referrer-Policy")
    check(referrer in ("same-origin", "no-referrer", "strict-origin",
                       "strict-origin-when-cross-origin"),
          f"{where}: Referrer-Policy is {referrer!r}")
    if (header(headers, "Content-Type") or "").startswith("text/html"):
        check("no-store" in (header(headers, "Cache-Control") or ""),
              f"{where}: a page without Cache-Control: no-store")
        equal(header(headers, "X-Frame-Options"), "DENY", f"{where}: X-Frame-Options")
    SECURITY_CHECKED.append((kind, url, status))


# ---------------------------------------------------------------------------
# HTTP without the browser: its own cookie jar, no redirects followed.


class Answer:
    def __init__(self, status, headers, text):
        self.status, self.headers, self.text = status, headers, text

    def json(self):
        return json.loads(self.text)


class Http:
    """A client with a cookie jar of its own (a second browser, as far as
    the server can tell). Redirects are not followed; every answer of the
    web interface has its security headers checked."""

    def __init__(self, cookies=None):
        self.cookies = dict(cookies or {})
        self.set_cookies = []  # every Set-Cookie value received

    def request(self, method, path, body=None, headers=None, auth=None):
        h = dict(headers or {})
        if isinstance(body, dict):
            body = urllib.parse.urlencode(body)
            h.setdefault("Content-Type", "application/x-www-form-urlencoded")
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if auth:
            h["Authorization"] = auth
        conn = http.client.HTTPConnection(HOSTNAME, int(PORT), timeout=30)
        try:
            conn.request(method, path, body=body, headers=h)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        for value in resp.headers.get_all("Set-Cookie") or []:
            self.set_cookies.append(value)
            name, _, rest = value.partition("=")
            val = rest.split(";", 1)[0]
            if not val or re.search(r";\s*Max-Age=0\b", value, re.I):
                self.cookies.pop(name.strip(), None)
            else:
                self.cookies[name.strip()] = val
        if is_ui(path):
            check_security_headers(URL + path, resp.status, resp.headers, f"{method} (http)")
        return Answer(resp.status, resp.headers, data.decode("utf-8", "replace"))

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, form, **kw):
        return self.request("POST", path, body=form, **kw)

    def sign_in(self, user, password):
        page = self.get("/ui/sign-in")
        equal(page.status, 200, "GET /ui/sign-in")
        answer = self.post("/ui/sign-in", {"csrf": csrf_of(page.text), "next": "/ui/",
                                           "username": user, "password": password})
        equal(answer.status, 303, f"sign-in of {user} through the form (no browser)")
        check("berth_session" in self.cookies, f"sign-in of {user}: no session cookie set")
        return answer


def csrf_of(html):
    m = re.search(r'name="csrf" value="([^"]*)"', html)
    check(m is not None, "no csrf field in the page")
    return m.group(1)


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def admin_api(method, path, obj=None):
    body = json.dumps(obj) if obj is not None else None
    answer = Http().request(method, path, body=body, auth=basic("admin", ADMIN_PW),
                            headers={"Content-Type": "application/json"} if body else {})
    check(200 <= answer.status < 300, f"{method} {path}: {answer.status} {answer.text[:300]}")
    return answer.json() if answer.text.strip() else None


def registry_token(user, secret, repo):
    """The status of /token for pull of REPO with Basic USER:SECRET, and the
    token when 200."""
    query = urllib.parse.urlencode({"service": HOST, "scope": f"repository:{repo}:pull"})
    answer = Http().get(f"/token?{query}", auth=basic(user, secret))
    token = answer.json().get("token") if answer.status == 200 else None
    return answer.status, token


def tags_list_status(repo, token):
    return Http().get(f"/v2/{repo}/tags/list", auth=f"Bearer {token}").status


def human_bytes(n):
    """The page's way of writing sizes (ui/view.rs `bytes`); a set, for the
    rare exact half where two roundings are defensible."""
    if n < 1024:
        return {f"{n} B"}
    value, units = n / 1024, ["KiB", "MiB", "GiB", "TiB", "PiB"]
    unit = 0
    while value >= 1024 and unit < len(units) - 1:
        value /= 1024
        unit += 1
    low, high = f"{value - 1e-9:.1f}", f"{value + 1e-9:.1f}"
    return {f"{low} {units[unit]}", f"{high} {units[unit]}"}


# ---------------------------------------------------------------------------
# Images, made here: an OCI layout (pushed by skopeo) and an artifact.

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


class Layout:
    def __init__(self, path):
        self.path = path
        os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)
        with open(os.path.join(path, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)

    def blob(self, data, media_type):
        hexdigest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.path, "blobs", "sha256", hexdigest), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": f"sha256:{hexdigest}", "size": len(data)}

    def index_json(self, tag, descriptor):
        top = dict(descriptor, annotations={"org.opencontainers.image.ref.name": tag})
        with open(os.path.join(self.path, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "manifests": [top]}, f)


def tar_gz(files):
    """A gzip tar of FILES (name -> bytes), byte for byte reproducible; and
    the uncompressed tar's digest (the config's diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o755 if "bin" in name else 0o644
            tar.addfile(info, io.BytesIO(data))
    plain = raw.getvalue()
    return gzip.compress(plain, mtime=0), "sha256:" + hashlib.sha256(plain).hexdigest()


def noise(n, seed):
    """N bytes that do not compress (a layer of a known, KiB-sized size)."""
    out, block = bytearray(), seed.encode()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


def image(layout, arch, env, labels, layers_files):
    """An image manifest for linux/ARCH; returns its descriptor and facts."""
    layers, diff_ids = [], []
    for files in layers_files:
        gz, diff_id = tar_gz(files)
        layers.append(layout.blob(gz, OCI_LAYER))
        diff_ids.append(diff_id)
    config = {
        "created": "2026-01-02T03:04:05Z",
        "architecture": arch,
        "os": "linux",
        "config": {
            "Entrypoint": ["/app/server", "--port", "8080"],
            "Cmd": ["--verbose"],
            "Env": env,
            "Labels": labels,
            "User": "1000",
            "WorkingDir": "/app",
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2026-01-02T03:04:05Z", "created_by": "tests/ui/browser.py"}],
    }
    config_desc = layout.blob(json.dumps(config, sort_keys=True).encode(), OCI_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_desc,
                "layers": layers}
    desc = layout.blob(json.dumps(manifest).encode(), OCI_MANIFEST)
    return desc, {"config": config_desc, "layers": layers}


ENV = ["PATH=/usr/local/bin:/usr/bin:/bin", "APP_MODE=production", "DB_PASSWORD=hunter2"]
SHOWN_ENV = ["PATH=/usr/local/bin:/usr/bin:/bin", "APP_MODE=production", "DB_PASSWORD=(hidden)"]
LABELS = {"org.opencontainers.image.title": "webapp", "org.opencontainers.image.version": "1.0"}
FACTS = {}  # what setup pushed: digests, sizes
# A long name with no hyphen or space to break at (narrow windows).
LONG = "alice/com.example.payments.gateway_internal_api"


def skopeo_push(layout_dir, tag, dest, user, multi):
    cmd = ["skopeo", "copy", "--quiet", "--dest-creds", f"{user}:{PASSWORDS[user]}",
           "--dest-tls-verify=false"]
    if multi:
        cmd.append("--all")
    cmd += [f"oci:{layout_dir}:{tag}", f"docker://{HOST}/{dest}"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    check(run.returncode == 0, f"skopeo copy to {dest} failed: {run.stderr.strip()[-800:]}")


def berth_push(user, ref, path):
    env = dict(os.environ, BERTH_USERNAME=user, BERTH_PASSWORD=PASSWORDS[user])
    run = subprocess.run([BERTH, "push", "--quiet", f"{HOST}/{ref}", path], env=env,
                         capture_output=True, text=True, timeout=120)
    check(run.returncode == 0, f"berth push {ref} failed: {run.stderr.strip()[-800:]}")
    pushed = re.search(r"@(sha256:[0-9a-f]{64})", run.stdout)
    check(pushed is not None, f"berth push {ref} named no digest: {run.stdout!r}")
    return pushed.group(1)


def setup():
    """Users, an organisation and repositories, through the admin API,
    skopeo and `berth push`."""
    for user in ("alice", "bob", "carol", "dave"):
        admin_api("POST", "/api/v1/users", {"name": user, "password": PASSWORDS[user]})
    admin_api("POST", "/api/v1/orgs", {"name": "acme", "owner": "alice"})
    admin_api("PUT", "/api/v1/orgs/acme/members/bob", {"role": "member"})

    # alice/webapp:1.0, a private image with two layers.
    one = Layout(os.path.join(WORK, "webapp"))
    desc, parts = image(one, "amd64", ENV, LABELS, [
        {"app/bin/server": noise(40 * 1024 + 123, "server")},
        {"app/greeting.txt": b"hello from berth's browser suite\n"},
    ])
    one.index_json("1.0", desc)
    skopeo_push(one.path, "1.0", "alice/webapp:1.0", "alice", multi=False)
    FACTS["webapp"] = dict(parts, digest=desc["digest"], size=desc["size"])

    # alice/multi:2.0, an index of linux/amd64 and linux/arm64, public.
    multi = Layout(os.path.join(WORK, "multi"))
    children = {}
    for arch in ("amd64", "arm64"):
        labels = dict(LABELS, **{"org.opencontainers.image.title": f"multi-{arch}"})
        child, child_parts = image(multi, arch, ENV, labels,
                                   [{"app/arch.txt": f"built for {arch}\n".encode()}])
        children[arch] = dict(child_parts, digest=child["digest"], size=child["size"])
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": children[a]["digest"], "size": children[a]["size"],
         "platform": {"os": "linux", "architecture": a}} for a in ("amd64", "arm64")]}
    index_desc = multi.blob(json.dumps(index).encode(), OCI_INDEX)
    multi.index_json("2.0", index_desc)
    skopeo_push(multi.path, "2.0", "alice/multi:2.0", "alice", multi=True)
    FACTS["multi"] = {"digest": index_desc["digest"], "children": children}

    # alice/notes:v1 (private) and bob/tools:0.1 (public), artifacts.
    note = os.path.join(WORK, "notes.txt")
    with open(note, "w") as f:
        f.write("release notes\n")
    berth_push("alice", "alice/notes:v1", note)
    berth_push("bob", "bob/tools:0.1", note)
    FACTS["long"] = berth_push("alice", f"{LONG}:2026.12.03-build.4711", note)
    for repo in ("alice/multi", "bob/tools"):
        admin_api("PUT", "/api/v1/repositories/visibility",
                  {"repository": repo, "visibility": "public"})


# ---------------------------------------------------------------------------
# The browser.


def navigating(error):
    """Whether a driver error is one of a page going away under it."""
    text = str(error)
    return any(sign in text for sign in (
        "does not belong to the document", "stale element", "no such execution context",
        "Execution context was destroyed", "Inspected target navigated or closed",
        "Cannot find context with specified id"))


def press_enter(element):
    """Enter in a form's field: it submits the form. The page may be gone
    before the driver has finished the key press; that is the point."""
    try:
        element.send_keys(Keys.ENTER)
    except WebDriverException as e:
        if not navigating(e):
            raise


class Browser:
    def __init__(self):
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                    f"--window-size={WIDE[0]},{WIDE[1]}",
                    f"--user-data-dir={os.path.join(WORK, 'chromium-profile')}",
                    "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-default-apps", "--password-store=basic",
                    "--disable-features=Translate,OptimizationHints,MediaRouter,"
                    "PasswordLeakDetection,AutofillServerCommunication"):
            opts.add_argument(arg)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        service = Service("/usr/bin/chromedriver",
                          log_output=os.path.join(WORK, "chromedriver.log"))
        self.d = webdriver.Chrome(service=service, options=opts)
        self.d.set_page_load_timeout(30)
        self.loads = 0
        self.console_seen = 0
        self.shots = []

    def quit(self):
        try:
            self.d.quit()
        except Exception:  # noqa: BLE001 (already gone)
            pass

    # -- loading pages ------------------------------------------------------

    def drain(self, expect_status):
        """Reads the logs since the last call: every document and redirect
        the browser fetched has its security headers checked; the console
        must hold no error and no CSP report. Returns the last document's
        status."""
        documents = []
        for entry in self.d.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            method, params = msg.get("method"), msg.get("params", {})
            if method == "Network.requestWillBeSent" and params.get("redirectResponse"):
                r = params["redirectResponse"]
                if is_ui(r["url"]):
                    check_security_headers(r["url"], r["status"], r["headers"], "redirect (browser)")
            elif method == "Network.responseReceived":
                r = params["response"]
                if params.get("type") == "Document":
                    documents.append((r["url"], r["status"]))
                if r["url"].startswith(URL) and is_ui(r["url"]):
                    check_security_headers(r["url"], r["status"], r["headers"],
                                           f"{params.get('type', '?').lower()} (browser)")
        if expect_status is None:  # no page load expected: the console only
            url, status = self.d.current_url, None
        else:
            check(documents, "the browser fetched no document")
            url, status = documents[-1]
        problems = []
        for entry in self.d.get_log("browser"):
            self.console_seen += 1
            message = entry.get("message", "")
            source = entry.get("source")
            # The page's own status (a 404 page is a 404), as expected.
            expected_network = (
                source == "network" and message.startswith(url + " ")
                and f"status of {status}" in message and status == expect_status)
            if "Content Security Policy" in message or (
                    entry["level"] == "SEVERE" and not expected_network):
                problems.append(f"{entry['level']} {source}: {message}")
            elif entry["level"] == "WARNING":
                print(f"      console warning on {url}: {message}")
        if expect_status is not None:
            equal(status, expect_status, f"HTTP status of {url}")
            self.loads += 1
        check(not problems, f"console of {url}:\n        " + "\n        ".join(problems))
        return status

    def landed(self, status, shot):
        WebDriverWait(self.d, 20).until(
            lambda d: d.execute_script("return document.readyState") == "complete")
        self.drain(status)
        if shot:
            self.screenshot(shot)

    def get(self, path, status=200, shot=None):
        self.d.get(URL + path)
        self.landed(status, shot)

    def submit(self, action, status=200, shot=None):
        """Runs ACTION (a click, an Enter) and waits for the next page: a
        mark left on this page's window is gone from the next one. (Element
        staleness is not used: while the page goes, the driver may answer
        with errors other than stale element.)"""
        self.d.execute_script("window.berthSuiteMark = true;")
        try:
            action()
        except WebDriverException as e:
            if not navigating(e):
                raise

        def moved(d):
            try:
                return d.execute_script(
                    "return window.berthSuiteMark === undefined"
                    " && document.readyState === 'complete';")
            except WebDriverException as e:
                if navigating(e):
                    return False
                raise
        WebDriverWait(self.d, 20, poll_frequency=0.05).until(
            moved, message=f"no new page after the action on {self.path()}")
        self.landed(status, shot)

    def screenshot(self, name):
        os.makedirs(SHOTS, exist_ok=True)
        metrics = self.d.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = metrics["cssContentSize"]
        width = max(1, int(size["width"]))
        height = max(1, min(int(size["height"]), 6000))
        shot = self.d.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
        path = os.path.join(SHOTS, f"{name}.png")
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        self.shots.append(path)

    # -- reading pages ------------------------------------------------------

    def find(self, css):
        found = self.d.find_elements(By.CSS_SELECTOR, css)
        check(found, f"no element {css} on {self.path()}")
        return found[0]

    def all(self, css):
        return self.d.find_elements(By.CSS_SELECTOR, css)

    def text(self, css):
        return self.find(css).text.strip()

    def has(self, css):
        return bool(self.d.find_elements(By.CSS_SELECTOR, css))

    def path(self):
        u = urllib.parse.urlsplit(self.d.current_url)
        return u.path + (f"?{u.query}" if u.query else "")

    def title(self):
        return self.d.title

    def rows(self, table_css):
        """A table's body rows as lists of cell texts."""
        return self.d.execute_script(
            "return Array.from(document.querySelectorAll(arguments[0] + ' tbody tr'))"
            ".map(tr => Array.from(tr.cells).map(c => c.innerText.trim()));", table_css)

    def facts(self, dl_css):
        """A <dl> as a dict of dt -> dd texts."""
        return self.d.execute_script(
            "const out = {}; for (const dt of document.querySelectorAll(arguments[0] + ' > dt')) "
            "{ out[dt.innerText.trim()] = dt.nextElementSibling.innerText.trim(); } return out;",
            dl_css)

    def csrf(self):
        return self.find("header input[name=csrf]").get_attribute("value")

    def session_cookie(self):
        cookie = self.d.get_cookie("berth_session")
        check(cookie is not None, "the browser holds no berth_session cookie")
        return cookie

    # -- signing in ---------------------------------------------------------

    def sign_in(self, user, password, status=200, shot=None, fresh=True):
        """Signs in with the keyboard only: the user name field has the
        focus when the page opens, Tab moves to the password, Enter submits."""
        if fresh:
            self.clear_cookies()
        self.get("/ui/sign-in", shot=shot)
        # autofocus applies at the next rendering update, maybe after load.
        try:
            WebDriverWait(self.d, 3).until(
                lambda d: d.execute_script("return document.activeElement.id") == "username")
        except TimeoutException:
            pass
        active = self.d.switch_to.active_element
        equal(active.get_attribute("id"), "username", "focused field when the sign-in page opens")
        active.send_keys(user)
        active.send_keys(Keys.TAB)
        active = self.d.switch_to.active_element
        equal(active.get_attribute("id"), "password", "focused field after Tab")
        active.send_keys(password)
        self.submit(lambda: press_enter(active), status=status)
        if status == 200:
            equal(self.text("#nav-account"), user, "the signed-in user named in the navigation")

    def clear_cookies(self):
        """Forgets every cookie: the next page is a new visitor's."""
        self.d.execute_cdp_cmd("Network.clearBrowserCookies", {})
        check(not self.d.get_cookies(), f"cookies left after clearing: {self.d.get_cookies()}")

    def signed_out_nav(self):
        check(not self.has("#nav-account"), f"{self.path()} still names a signed-in user")
        equal(self.text("#nav-sign-in"), "Sign in", "the navigation's sign-in link")

    # -- the clipboard ------------------------------------------------------

    def clipboard(self):
        return self.d.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "navigator.clipboard.readText().then(done, e => done('READ FAILED: ' + e));")

    def set_clipboard(self, text):
        result = self.d.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "navigator.clipboard.writeText(arguments[0]).then(() => done('ok'),"
            " e => done('WRITE FAILED: ' + e));", text)
        equal(result, "ok", "writing a sentinel to the clipboard")

    # -- window -------------------------------------------------------------

    def narrow(self, on):
        if on:
            self.d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                "width": NARROW[0], "height": NARROW[1], "deviceScaleFactor": 1, "mobile": False})
        else:
            self.d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    def scheme(self, dark):
        self.d.execute_cdp_cmd("Emulation.setEmulatedMedia", {
            "features": [{"name": "prefers-color-scheme", "value": "dark" if dark else "light"}]})

    def overflow(self):
        """How wide the page is against the window, and the outermost
        elements (or unbreakable texts) past the window's right edge: those
        outside a .scroll container, and those inside one that escape its
        scrolling (positioned absolutely or fixed, the container being no
        containing block)."""
        return self.d.execute_script("""
            // clientWidth: the viewport less a classic scrollbar (innerWidth
            // counts it, and would hide an overflow narrower than it).
            const w = document.documentElement.clientWidth, wide = [], out = [];
            const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
              (typeof el.className === 'string' && el.className ?
                '.' + el.className.trim().split(/\\s+/).join('.') : '');
            const escapes = el => ['absolute', 'fixed'].includes(getComputedStyle(el).position);
            for (const el of document.body.querySelectorAll('*')) {
              const box = el.closest('.scroll');
              if (box && box !== el && !escapes(el)) continue;
              const r = el.getBoundingClientRect();
              if (r.width > 0 && r.height > 0 && r.right > w + 1) { wide.push([el, r.right]); }
            }
            for (const [el, right] of wide) {
              if (!wide.some(([o]) => o !== el && o.contains(el))) {
                out.push(name(el) + ' (right edge ' + Math.round(right) + ' px)');
              }
            }
            // Text wider than its box (a word that cannot break) moves no
            // box: find it through the text's own rectangles.
            const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
            for (let node = walker.nextNode(); node; node = walker.nextNode()) {
              const el = node.parentElement;
              if (!node.textContent.trim() || el.closest('.scroll, .visually-hidden')) continue;
              if (wide.some(([o]) => o.contains(el))) continue;
              const range = document.createRange();
              range.selectNodeContents(node);
              const r = range.getBoundingClientRect();
              if (r.width > 0 && r.right > w + 1) {
                out.push('text "' + node.textContent.trim().slice(0, 40) + '" in ' + name(el) +
                  ' (right edge ' + Math.round(r.right) + ' px)');
              }
            }
            return {scroll: document.documentElement.scrollWidth, client: w,
                    inner: window.innerWidth, offenders: out};
        """)


# ---------------------------------------------------------------------------
# The steps.

STEPS = []
STATE = {"alice_pw": PASSWORDS["alice"]}


def step(title):
    def wrap(fn):
        STEPS.append((len(STEPS) + 1, title, fn))
        return fn
    return wrap


def explore_names(b):
    return [row[0] for row in b.rows("#repositories")] if b.has("#repositories") else []


@step("sign in with the keyboard; explore page; search")
def t_sign_in(b):
    b.clear_cookies()
    b.get("/", shot="01-explore-anonymous-home")
    b.signed_out_nav()
    b.sign_in("alice", STATE["alice_pw"], shot="02-sign-in")
    equal(b.path(), "/ui/", "where signing in lands")
    equal(b.title(), "Repositories · berth", "explore page title")
    names = explore_names(b)
    equal(sorted(names), sorted(["alice/multi", "alice/notes", "alice/webapp", "bob/tools", LONG]),
          "repositories alice may pull, on the explore page")
    b.screenshot("03-explore")
    search = b.find("#q")
    search.click()
    search.send_keys("web")
    b.submit(lambda: press_enter(search), shot="04-explore-search")
    equal(b.path(), "/ui/?q=web", "search URL")
    equal(explore_names(b), ["alice/webapp"], "search for 'web'")
    equal(b.find("#q").get_attribute("value"), "web", "the search box keeps the query")
    search = b.find("#q")
    search.clear()
    search.send_keys("zzz-none")
    b.submit(lambda: press_enter(search))
    equal(b.text("#no-repositories"), "No repository you may pull has “zzz-none” in its name.",
          "an empty search's message")


@step("browse: repository, tags, image manifest, index platforms")
def t_browse(b):
    b.sign_in("alice", STATE["alice_pw"])
    b.submit(lambda: b.find("#repositories a[href='/ui/repo/alice/webapp']").click(),
             shot="05-repository")
    equal(b.path(), "/ui/repo/alice/webapp", "repository link")
    equal(b.text("#repository-name"), "alice/webapp", "repository heading")
    equal(b.text("#visibility"), "private", "visibility badge")
    check("1 tag · 1 manifest" in b.text("p.facts"), f"facts line: {b.text('p.facts')!r}")
    webapp = FACTS["webapp"]
    rows = b.rows("#tags")
    equal([r[0] for r in rows], ["1.0"], "tags of alice/webapp")
    equal(rows[0][1], webapp["digest"][:19], "the tag's short digest")
    link = b.find("tr[data-tag='1.0'] a")
    equal(link.get_attribute("title"), webapp["digest"], "the tag's digest link title")
    b.submit(link.click, shot="06-manifest-image")
    equal(b.path(), f"/ui/manifest/alice/webapp@{webapp['digest']}", "manifest URL")
    equal(b.text("#manifest-digest"), webapp["digest"], "manifest heading")
    equal(b.text("#media-type"), OCI_MANIFEST, "manifest media type")
    equal(b.text("#manifest-tags"), "1.0", "manifest tags")
    total = sum(layer["size"] for layer in webapp["layers"]) + webapp["config"]["size"]
    check(b.text("#total-size") in human_bytes(total),
          f"total size {b.text('#total-size')!r}, expected one of {human_bytes(total)}")
    layers = b.rows("#layers")
    equal(len(layers), 2, "layer rows")
    for row, layer in zip(layers, webapp["layers"]):
        equal(row[1], layer["digest"][:19], "layer short digest")
        equal(row[2], OCI_LAYER, "layer media type")
        check(row[3] in human_bytes(layer["size"]),
              f"layer size {row[3]!r}, expected one of {human_bytes(layer['size'])}")
    config = b.facts("#config")
    for key, want in (("Entrypoint", "/app/server --port 8080"), ("Command", "--verbose"),
                      ("User", "1000"), ("Working directory", "/app"),
                      ("Platform", "linux/amd64"), ("Created", "2026-01-02T03:04:05Z")):
        equal(config.get(key), want, f"configuration {key}")
    env = [li.text.strip() for li in b.all("#env li")]
    equal(env, SHOWN_ENV, "environment as shown")
    check("hunter2" not in b.d.page_source, "the page's source holds the secret value hunter2")
    equal({r[0]: r[1] for r in b.rows("#labels")}, LABELS, "labels")
    equal(b.text("#pull-digest"), f"docker pull {HOST}/alice/webapp@{webapp['digest']}",
          "pull by digest command")

    multi = FACTS["multi"]
    b.get("/ui/repo/alice/multi")
    equal(b.text("#visibility"), "public", "visibility badge of alice/multi")
    equal(b.rows("#tags")[0][3], "linux/amd64, linux/arm64", "platforms column of tag 2.0")
    b.submit(b.find("tr[data-tag='2.0'] a").click, shot="07-manifest-index")
    equal(b.text("#manifest-digest"), multi["digest"], "index heading")
    equal(b.text("#media-type"), OCI_INDEX, "index media type")
    platforms = b.rows("#platforms")
    equal([r[0] for r in platforms], ["linux/amd64", "linux/arm64"], "platforms of the index")
    index_path = b.path()
    for arch in ("amd64", "arm64"):
        child = multi["children"][arch]
        link = b.find(f"#platforms a[href='/ui/manifest/alice/multi@{child['digest']}']")
        equal(link.text.strip(), child["digest"][:19], f"linux/{arch} link text")
        # The image's size: its config and layers, as its manifest states them.
        image_size = child["config"]["size"] + sum(layer["size"] for layer in child["layers"])
        size = [r[2] for r in platforms if r[0] == f"linux/{arch}"][0]
        check(size in human_bytes(image_size), f"linux/{arch} image size {size!r}, not {image_size} B")
        b.submit(link.click, shot=f"08-manifest-child-{arch}")
        equal(b.text("#manifest-digest"), child["digest"], f"linux/{arch} page heading")
        equal(b.facts("#config").get("Platform"), f"linux/{arch}", f"linux/{arch} config platform")
        equal([li.text.strip() for li in b.all("#env li")], SHOWN_ENV, f"linux/{arch} env")
        equal(len(b.rows("#layers")), 1, f"linux/{arch} layers")
        b.get(index_path)


@step("copy buttons put the pull command on the clipboard")
def t_copy(b):
    b.sign_in("alice", STATE["alice_pw"])
    b.d.execute_cdp_cmd("Browser.grantPermissions", {
        "origin": URL, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    for repo, tag, button in (("alice/webapp", "1.0", "pull-1"),
                              ("alice/multi", "2.0", "tag-pull-1")):
        b.get(f"/ui/repo/{repo}")
        want = f"docker pull {HOST}/{repo}:{tag}"
        copy = b.find(f"button.copy[data-copy='{button}']")
        check(copy.is_displayed(), f"the Copy button {button} of {repo} is not shown")
        b.set_clipboard("sentinel")
        copy.click()
        status = copy.find_element(By.XPATH, "ancestor::*[self::section or self::main][1]")
        WebDriverWait(b.d, 5).until(
            lambda d: status.find_element(By.CSS_SELECTOR, ".copy-status").text == "Copied",
            message=f"the copy status of {repo} never said Copied")
        equal(b.clipboard(), want, f"clipboard after Copy on {repo}")
        b.drain(None)


def token_rows(b):
    return {tr.get_attribute("data-token"): tr for tr in b.all("#tokens tbody tr")}


@step("account: personal access token created, used, revoked")
def t_tokens(b):
    b.sign_in("alice", STATE["alice_pw"])
    b.submit(b.find("#nav-account").click)
    equal(b.path(), "/ui/account", "the account link")
    equal(b.text("h1"), "Account: alice", "account heading")
    b.find("#token-name").send_keys("ci-token")
    push = b.find("#create-token input[name=push]")
    if push.is_selected():
        push.click()
    b.find("#token-repositories").send_keys("alice/*")
    days = b.find("#token-days")
    days.clear()
    days.send_keys("7")
    created_at = datetime.datetime.now(datetime.timezone.utc)
    b.submit(b.find("#create-token-button").click, status=201, shot="09-account-new-token")
    equal(b.text("#notice"), "Token ci-token created.", "notice after creating a token")
    secret = b.text("#new-token-secret")
    check(len(secret) >= 20, f"token secret shown: {secret!r}")
    row = token_rows(b).get("ci-token")
    check(row is not None, "no row for ci-token in the tokens table")
    cells = [c.text.strip() for c in row.find_elements(By.CSS_SELECTOR, "th, td")]
    equal(cells[1], "pull", "the token's actions")
    equal(cells[2], "alice/*", "the token's repositories")
    expires = datetime.datetime.strptime(cells[3], "%Y-%m-%d %H:%M UTC").replace(
        tzinfo=datetime.timezone.utc)
    drift = abs((expires - (created_at + datetime.timedelta(days=7))).total_seconds())
    check(drift < 180, f"the token expires {cells[3]}, not 7 days from now")
    equal(cells[4], "never", "the token's last use")

    status, token = registry_token("alice", secret, "alice/webapp")
    equal(status, 200, "/token with the new token as password")
    equal(tags_list_status("alice/webapp", token), 200, "/v2/alice/webapp/tags/list with its token")

    # A session signed in with the token: its limits, no password change;
    # it ends with the token.
    via_token = Http()
    via_token.sign_in("alice", secret)
    page = via_token.get("/ui/account")
    equal(page.status, 200, "the account page of a session signed in with the token")
    check('id="via-token"' in page.text and 'id="change-password"' not in page.text,
          "a session signed in with a token is offered the password change, or not told")

    b.get("/ui/account")
    check(secret not in b.d.page_source, "the token's secret is shown again on a later visit")
    check(not b.has("#new-token-secret"), "a later visit shows a secret box")
    revoke = b.find("button[aria-label='Revoke ci-token']")
    b.submit(revoke.click)
    equal(b.path(), "/ui/account", "where revoking lands")
    check("ci-token" not in token_rows(b), "ci-token still listed after revoking it")
    status, _ = registry_token("alice", secret, "alice/webapp")
    equal(status, 401, "/token with the revoked token")
    page = via_token.get("/ui/account")
    equal(page.status, 401, "the token's web session after revoking it (/ui/account)")


@step("password change ends every session; old password refused, new accepted")
def t_password(b):
    other = Http()
    other.sign_in("alice", STATE["alice_pw"])
    page = other.get("/ui/account")
    equal(page.status, 200, "the second session's account page before the change")
    check('id="nav-account"' in page.text, "the second session is not signed in")

    b.sign_in("alice", STATE["alice_pw"])
    b.get("/ui/account")
    b.find("#old-password").send_keys(STATE["alice_pw"])
    b.find("#new-password").send_keys(ALICE_NEW_PW)
    b.find("#confirm-password").send_keys(ALICE_NEW_PW)
    STATE["alice_pw"] = ALICE_NEW_PW  # for the later steps, whatever happens here
    b.submit(b.find("#change-password-button").click, shot="10-sign-in-password-changed")
    equal(b.path(), "/ui/sign-in?changed=1", "where a password change lands")
    equal(b.text("#notice"), "Password changed, and every login made with the old one ended: "
          "sign in with the new one.", "notice after the change")
    b.signed_out_nav()
    check(b.d.get_cookie("berth_session") is None, "the browser kept its session cookie")

    page = other.get("/ui/account")
    equal(page.status, 401, "the second session's account page after the change")
    check('id="nav-sign-in"' in page.text and 'id="nav-account"' not in page.text,
          "the second session's page is not in the signed-out state")
    page = other.get("/ui/")
    check('id="nav-sign-in"' in page.text, "the second session's explore page is signed in")

    b.sign_in("alice", PASSWORDS["alice"], status=401)
    equal(b.path(), "/ui/sign-in", "where a refused sign-in stays")
    equal(b.text("#notice"), "Wrong user name, password or token. A personal access token "
          "goes in the password field.", "notice for the old password")
    b.signed_out_nav()
    equal(b.find("#username").get_attribute("value"), "alice", "the user name is kept")
    b.sign_in("alice", ALICE_NEW_PW)
    equal(b.path(), "/ui/", "where signing in with the new password lands")


@step("sign out; the old session cookie is dead")
def t_sign_out(b):
    b.sign_in("alice", STATE["alice_pw"])
    cookie = b.session_cookie()["value"]
    replay = Http({"berth_session": cookie})
    page = replay.get("/ui/account")
    equal(page.status, 200, "the copied cookie before signing out")
    b.submit(b.find("#sign-out").click)
    equal(b.path(), "/ui/", "where signing out lands")
    b.signed_out_nav()
    check(b.d.get_cookie("berth_session") is None, "the browser kept its session cookie")
    replay = Http({"berth_session": cookie})
    page = replay.get("/ui/account")
    equal(page.status, 401, "the old cookie replayed on /ui/account")
    check('id="nav-account"' not in page.text and 'id="nav-sign-in"' in page.text,
          "the replayed cookie shows a signed-in page")
    page = replay.get("/ui/")
    check('id="nav-account"' not in page.text, "the replayed cookie signs in /ui/")


def anonymise(text, name):
    """TEXT with NAME, as written, percent-encoded (a link back to the page)
    or HTML-escaped, replaced by NAME."""
    for form in (name, urllib.parse.quote(name, safe=""), name.replace("/", "&#x2f;"),
                 name.replace("/", "&#47;")):
        text = text.replace(form, "NAME")
    return text


def same_as_missing(http, private, missing, who):
    a, b_ = http.get(private), http.get(missing)
    equal(a.status, 404, f"{who}: {private}")
    equal(b_.status, 404, f"{who}: {missing}")
    text_a, text_b = anonymise(a.text, "alice/webapp"), anonymise(b_.text, "alice/absent")
    check(text_a == text_b, f"{who}: {private} and {missing} answer different pages:\n"
          f"{text_a[:1500]}\n-----\n{text_b[:1500]}")
    skip = {"date", "x-request-id"}
    ha = sorted((k.lower(), v) for k, v in a.headers.items() if k.lower() not in skip)
    hb = sorted((k.lower(), v) for k, v in b_.headers.items() if k.lower() not in skip)
    equal(ha, hb, f"{who}: headers of {private} and {missing}")


@step("anonymous: public repositories only; private reads as missing")
def t_anonymous(b):
    b.clear_cookies()
    b.get("/ui/", shot="11-explore-anonymous")
    b.signed_out_nav()
    equal(sorted(explore_names(b)), ["alice/multi", "bob/tools"],
          "the explore page of an anonymous visitor")
    b.get("/ui/repo/alice/webapp", status=404, shot="12-error-not-found")
    equal(b.text("#error-title"), "Not found", "error page title")
    equal(b.text("#error-message"),
          "There is no repository here, or you may not see it: signing in may show it.",
          "error page message")
    b.get("/ui/repo/alice/multi")
    equal(b.text("#repository-name"), "alice/multi", "a public repository for anonymous")

    digest = FACTS["webapp"]["digest"]
    anonymous = Http()
    anonymous.get("/ui/")  # the CSRF cookie, so that both answers below set none
    for private, missing in (("/ui/repo/alice/webapp", "/ui/repo/alice/absent"),
                             (f"/ui/manifest/alice/webapp@{digest}",
                              f"/ui/manifest/alice/absent@{digest}")):
        same_as_missing(anonymous, private, missing, "anonymous")
    carol = Http()
    carol.sign_in("carol", PASSWORDS["carol"])
    names = re.findall(r'<a href="/ui/repo/([^"]+)">', carol.get("/ui/").text)
    equal(sorted(names), ["alice/multi", "bob/tools"], "carol's explore page")
    for private, missing in (("/ui/repo/alice/webapp", "/ui/repo/alice/absent"),
                             (f"/ui/manifest/alice/webapp@{digest}",
                              f"/ui/manifest/alice/absent@{digest}")):
        same_as_missing(carol, private, missing, "carol (signed in, may not pull)")


@step("CSRF: forms without the token or with a wrong one are refused")
def t_csrf(b):
    b.sign_in("alice", STATE["alice_pw"])
    b.get("/ui/account")
    session = Http({"berth_session": b.session_cookie()["value"]})
    good = b.csrf()
    form = {"name": "csrf-none", "pull": "on", "expires_in_days": "7"}
    for name, csrf in (("csrf-none", None), ("csrf-wrong", "A" * 43),
                       ("csrf-empty", "")):
        fields = dict(form, name=name)
        if csrf is not None:
            fields["csrf"] = csrf
        answer = session.post("/ui/account/tokens", fields)
        equal(answer.status, 403, f"POST /ui/account/tokens with {name}")
        check("<title>Form refused · berth</title>" in answer.text,
              f"the refusal page of {name} is not titled Form refused")
    other = Http()
    other.sign_in("carol", PASSWORDS["carol"])
    theirs = csrf_of(other.get("/ui/account").text)
    answer = session.post("/ui/account/tokens", dict(form, name="csrf-other", csrf=theirs))
    equal(answer.status, 403, "POST /ui/account/tokens with another session's token")
    answer = session.post("/ui/sign-out", {})
    equal(answer.status, 403, "POST /ui/sign-out without the token")
    answer = session.post("/ui/account/password", {
        "old_password": STATE["alice_pw"], "new_password": "changed-by-csrf",
        "confirm_password": "changed-by-csrf", "csrf": "wrong"})
    equal(answer.status, 403, "POST /ui/account/password with a wrong token")

    tokens = Http().get("/api/v1/user/tokens", auth=basic("alice", STATE["alice_pw"]))
    equal(tokens.status, 200, "alice's password still works (GET /api/v1/user/tokens)")
    names = [t["name"] for t in tokens.json()["tokens"]]
    check(not any(n.startswith("csrf-") for n in names), f"a refused form created tokens: {names}")
    equal(session.get("/ui/account").status, 200, "the session after a refused sign-out")
    b.get("/ui/account")
    check(not any(n.startswith("csrf-") for n in token_rows(b)), "the page lists refused tokens")

    # The same form with the page's token is accepted: the refusals above
    # were the token's, not the form's.
    answer = session.post("/ui/account/tokens", dict(form, name="csrf-ok", csrf=good))
    equal(answer.status, 201, "POST /ui/account/tokens with the page's token")
    check('id="new-token-secret"' in answer.text, "no secret shown for the accepted form")



@step("security headers, cookie flags, clean console")
def t_headers(b):
    b.sign_in("alice", STATE["alice_pw"])
    cookie = b.session_cookie()
    equal(cookie.get("httpOnly"), True, "the session cookie's HttpOnly")
    equal(cookie.get("sameSite"), "Strict", "the session cookie's SameSite")
    equal(b.d.execute_script("return document.cookie"), "", "cookies readable by script")
    csrf_cookie = b.d.get_cookie("berth_csrf")
    if csrf_cookie is not None:
        equal((csrf_cookie.get("httpOnly"), csrf_cookie.get("sameSite")), (True, "Strict"),
              "the CSRF cookie's flags")
    http = Http()
    http.sign_in("alice", STATE["alice_pw"])
    sessions = [c for c in http.set_cookies if c.startswith("berth_session=")]
    check(sessions, "signing in set no berth_session cookie")
    for attr in ("HttpOnly", "SameSite=Strict", "Path=/"):
        check(attr in [p.strip() for p in sessions[-1].split(";")],
              f"the session's Set-Cookie lacks {attr}: {sessions[-1].split(';', 1)[1]}")
    for away in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        jar = Http()
        page = jar.get("/ui/sign-in?" + urllib.parse.urlencode({"next": away}))
        answer = jar.post("/ui/sign-in", {"csrf": csrf_of(page.text), "next": away,
                                          "username": "carol", "password": PASSWORDS["carol"]})
        equal((answer.status, header(answer.headers, "Location")), (303, "/ui/"),
              f"where signing in with next={away} goes")
    digest = FACTS["webapp"]["digest"]
    paths = ["/", "/ui/", "/ui/?q=web", "/ui/repo/alice/webapp", "/ui/repo/alice/multi",
             f"/ui/manifest/alice/webapp@{digest}", f"/ui/manifest/alice/multi@{FACTS['multi']['digest']}",
             "/ui/account", "/ui/orgs/acme", "/ui/sign-in", "/ui/admin", "/ui/no-such-page"]
    for path in paths:
        answer = http.get(path)
        check(answer.status in (200, 403, 404), f"GET {path}: {answer.status}")
        check(not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", answer.text),
              f"{path} holds an inline script")
        check(not re.search(r"<style|\sstyle=|\son[a-z]+=", answer.text),
              f"{path} holds inline style or an event handler attribute")
    for asset, kind in (("/ui/assets/berth.css", "text/css"), ("/ui/assets/berth.js", "javascript")):
        answer = http.get(asset)
        equal(answer.status, 200, f"GET {asset}")
        check(kind in (header(answer.headers, "Content-Type") or ""),
              f"{asset} served as {header(answer.headers, 'Content-Type')}")
    # The console is read after every page load (Browser.drain); prove the
    # reading works, then load every page once more and find it clean.
    b.d.execute_script("console.error('berth-ui-probe')")
    probe = [e for e in b.d.get_log("browser") if "berth-ui-probe" in e.get("message", "")]
    check(probe, "the browser's console log is not being captured")
    for path in paths:
        status = 404 if path == "/ui/no-such-page" else 403 if path == "/ui/admin" else 200
        b.get(path, status=status)
    kinds = {k for k, _, _ in SECURITY_CHECKED}
    print(f"      {len(SECURITY_CHECKED)} answers checked ({', '.join(sorted(kinds))}); "
          f"{b.loads} browser page loads, {b.console_seen} console entries read, no error")


@step("narrow window (390 px) and dark scheme")
def t_narrow(b):
    digest, index = FACTS["webapp"]["digest"], FACTS["multi"]["digest"]
    child = FACTS["multi"]["children"]["arm64"]["digest"]
    plan = [
        ("admin", ["/ui/", "/ui/repo/alice/webapp", "/ui/repo/alice/multi",
                   f"/ui/manifest/alice/webapp@{digest}", f"/ui/manifest/alice/multi@{index}",
                   f"/ui/manifest/alice/multi@{child}", f"/ui/repo/{LONG}",
                   f"/ui/manifest/{LONG}@{FACTS['long']}", "/ui/orgs/acme", "/ui/admin",
                   "/ui/account", ("/ui/no-such-page", 404)]),
        ("alice", ["/ui/account"]),
        (None, ["/ui/sign-in", ("/ui/account", 401), ("/ui/repo/alice/webapp", 404)]),
    ]
    NARROW_SHOTS = {("admin", "/ui/"): "13a-narrow-explore",
                    ("admin", f"/ui/repo/{LONG}"): "13b-narrow-repository-long-name"}
    problems = []
    try:
        b.narrow(True)
        # The measure finds a wide element outside .scroll, and none inside.
        b.get("/ui/repo/alice/webapp")
        before = b.overflow()
        check(before["scroll"] <= before["client"] + 1 and before["inner"] == NARROW[0],
              f"a {NARROW[0]} px window before the probe: {before}")
        b.d.execute_script("const d = document.createElement('div'); d.id = 'probe';"
                           "d.textContent = 'probe'; d.style.width = '2000px';"
                           "document.querySelector('.scroll').appendChild(d);")
        inside = b.overflow()
        check(inside["scroll"] <= inside["client"] + 1, f"an element inside .scroll counted: {inside}")
        b.d.execute_script("document.getElementById('main').appendChild("
                           "document.getElementById('probe'));")
        probe = b.overflow()
        check(probe["scroll"] > probe["client"] + 1 and any("div#probe" in o for o in probe["offenders"]),
              f"the overflow measure missed a 2000 px element: {probe}")
        for user, paths in plan:
            if user:
                b.sign_in(user, STATE["alice_pw"] if user == "alice" else PASSWORDS[user])
            else:
                b.clear_cookies()
            for entry in paths:
                path, status = entry if isinstance(entry, tuple) else (entry, 200)
                b.get(path, status=status, shot=NARROW_SHOTS.get((user, path)))
                o = b.overflow()
                if o["scroll"] > o["client"] + 1 or o["scroll"] > o["inner"] + 1:
                    problems.append(f"{path} (as {user or 'anonymous'}): scrollWidth {o['scroll']}"
                                    f" > clientWidth {o['client']} (innerWidth {o['inner']});"
                                    " elements past the window's edge:"
                                    f" {', '.join(o['offenders'][:6]) or 'none found'}")
        b.sign_in("alice", STATE["alice_pw"])
        b.get(f"/ui/manifest/alice/webapp@{digest}", shot="13-narrow-manifest-light")
        light = b.d.execute_script("return getComputedStyle(document.body).backgroundColor")
        b.scheme(dark=True)
        dark = b.d.execute_script("return getComputedStyle(document.body).backgroundColor")
        dark_text = b.d.execute_script("return getComputedStyle(document.body).color")
        b.screenshot("14-narrow-manifest-dark")
        b.narrow(False)
        b.get("/ui/repo/alice/webapp", shot="15-repository-dark")
        check(light != dark, f"body background is {light} in both schemes")
        check(dark_text != dark, f"dark scheme: text and background are both {dark}")
    finally:
        b.scheme(dark=False)
        b.narrow(False)
    check(not problems, "horizontal overflow at 390 px:\n        " + "\n        ".join(problems))


@step("organisation: owner manages, plain member is refused")
def t_org(b):
    b.sign_in("alice", STATE["alice_pw"])
    b.get("/ui/account")
    b.submit(b.find("#orgs a[href='/ui/orgs/acme']").click, shot="16-org-owner")
    equal(b.text("h1"), "Organisation: acme", "organisation heading")
    for css in ("#add-member", "#create-robot", "#members select[name=role]",
                "button[aria-label='Remove bob']"):
        check(b.has(css), f"the owner's page lacks {css}")
    b.find("#member-name").send_keys("dave")
    Select(b.find("#member-role")).select_by_value("maintainer")
    b.submit(b.find("#add-member button[type=submit]").click)
    equal(b.text("#notice"), "dave is now a maintainer of acme.", "notice after adding dave")
    members = {r[0]: r[1] for r in b.rows("#members")}
    equal(members.get("dave"), "maintainer", "dave's role in the members table")
    api = {m["name"]: m["role"] for m in admin_api("GET", "/api/v1/orgs/acme/members")["members"]}
    equal(api.get("dave"), "maintainer", "dave's role through the API")

    b.find("#robot-name").send_keys("acme-ci")
    push = b.find("#create-robot input[name=push]")
    if push.is_selected():
        push.click()
    b.submit(b.find("#create-robot button[type=submit]").click, status=201,
             shot="17-org-robot-created")
    equal(b.text("#notice"), "Robot acme-ci created.", "notice after creating a robot")
    secret = b.text("#new-token-secret")
    check(len(secret) >= 20, f"robot secret shown: {secret!r}")
    check(any(li.text.startswith("acme-ci") for li in b.all("#robots li")), "acme-ci not listed")
    status, _ = registry_token("acme-ci", secret, "acme/app")
    equal(status, 200, "/token with the robot's secret")
    b.get("/ui/orgs/acme")
    check(secret not in b.d.page_source, "the robot's secret is shown again")

    b.sign_in("bob", PASSWORDS["bob"])
    b.get("/ui/orgs/acme", shot="18-org-member")
    members = {r[0]: r[1] for r in b.rows("#members")}
    equal(members, {"alice": "owner", "bob": "member", "dave": "maintainer"},
          "members as a plain member sees them")
    offered = [f"{e.tag_name}{'#' + e.get_attribute('id') if e.get_attribute('id') else ''}"
               for e in b.all("main form, main select, main button, main input")]
    equal(offered, [], "forms and buttons offered to a plain member")
    check(any(li.text.strip() == "acme-ci" for li in b.all("#robots li")),
          "the robot is not listed for a member")
    session = Http({"berth_session": b.session_cookie()["value"]})
    csrf = b.csrf()
    for path, form in (("/ui/orgs/acme/members", {"user": "bob", "role": "owner"}),
                       ("/ui/orgs/acme/members", {"user": "dave", "role": "member"}),
                       ("/ui/orgs/acme/members/remove", {"user": "alice"}),
                       ("/ui/orgs/acme/robots", {"name": "bob-bot", "pull": "on",
                                                 "expires_in_days": "7"})):
        answer = session.post(path, dict(form, csrf=csrf))
        equal(answer.status, 403, f"bob's POST {path} {form}")
        check("<title>Not allowed · berth</title>" in answer.text,
              f"bob's POST {path}: the refusal is not titled Not allowed")
    api = {m["name"]: m["role"] for m in admin_api("GET", "/api/v1/orgs/acme/members")["members"]}
    equal(api, {"alice": "owner", "bob": "member", "dave": "maintainer"},
          "members through the API after bob's refused posts")


@step("admin page for administrators only")
def t_admin(b):
    b.sign_in("admin", ADMIN_PW)
    equal(b.text("#nav-admin"), "Admin", "the administrator's Admin link")
    b.submit(b.find("#nav-admin").click, shot="19-admin")
    equal(b.path(), "/ui/admin", "the Admin link")
    users = {r[0]: r[1] for r in b.rows("#users")}
    for name, kind in (("admin", "administrator"), ("alice", "user"), ("bob", "user"),
                       ("acme-ci", "robot")):
        equal(users.get(name), kind, f"{name} in the users table")
    keys = b.rows("#keys")
    active = [kid for kid, state in keys if state == "active: signs new tokens"]
    equal(len(active), 1, f"active keys in {keys}")
    rotate = b.find("#rotate-keys")
    equal(rotate.text.strip(), "Rotate: sign with a new key", "the Rotate button")
    b.submit(rotate.click)
    new_keys = b.rows("#keys")
    new_active = [kid for kid, state in new_keys if state == "active: signs new tokens"]
    equal(len(new_active), 1, f"active keys after rotating: {new_keys}")
    check(new_active[0] != active[0], "rotating kept the same active key")
    equal(b.text("#notice"), f"New tokens are signed with key {new_active[0]}.",
          "notice after rotating")
    old = [state for kid, state in new_keys if kid == active[0]]
    check(old and old[0].startswith("verifies tokens it signed"),
          f"the previous key after rotating: {old}")
    status, token = registry_token("alice", STATE["alice_pw"], "alice/webapp")
    equal((status, tags_list_status("alice/webapp", token)), (200, 200),
          "a token signed by the new key at /v2")

    b.sign_in("bob", PASSWORDS["bob"])
    check(not b.has("#nav-admin"), "a non-administrator is offered the Admin link")
    b.get("/ui/admin", status=403, shot="20-admin-refused")
    equal(b.text("#error-title"), "Not allowed", "the refusal page's title")
    answer = Http({"berth_session": b.session_cookie()["value"]}).get("/ui/admin")
    equal(answer.status, 403, "GET /ui/admin as bob (no browser)")
    answer = Http({"berth_session": b.session_cookie()["value"]}).post(
        "/ui/admin/keys/rotate", {"csrf": b.csrf()})
    equal(answer.status, 403, "POST /ui/admin/keys/rotate as bob")
    answer = Http().get("/ui/admin")
    equal(answer.status, 401, "GET /ui/admin anonymously")


EXPECTED_SHOTS = [
    "01-explore-anonymous-home", "02-sign-in", "03-explore", "04-explore-search",
    "05-repository", "06-manifest-image", "07-manifest-index", "08-manifest-child-amd64",
    "08-manifest-child-arm64", "09-account-new-token", "10-sign-in-password-changed",
    "11-explore-anonymous", "12-error-not-found", "13a-narrow-explore", "13b-narrow-repository-long-name",
    "13-narrow-manifest-light",
    "14-narrow-manifest-dark", "15-repository-dark", "16-org-owner", "17-org-robot-created",
    "18-org-member", "19-admin", "20-admin-refused",
]


@step("screenshots of every page")
def t_screenshots(b):
    missing = []
    for name in EXPECTED_SHOTS:
        path = os.path.join(SHOTS, f"{name}.png")
        try:
            with open(path, "rb") as f:
                head = f.read(8)
            size = os.path.getsize(path)
        except OSError:
            missing.append(name)
            continue
        check(head == b"\x89PNG\r\n\x1a\n" and size > 1000, f"{path} is not a PNG screenshot")
    check(not missing, f"screenshots not taken: {', '.join(missing)}")
    print(f"      {len(EXPECTED_SHOTS)} screenshots in {SHOTS}/")


# ---------------------------------------------------------------------------


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if os.path.isdir(SHOTS):
        for name in os.listdir(SHOTS):
            if name.endswith(".png"):
                os.remove(os.path.join(SHOTS, name))
    started = time.monotonic()
    try:
        setup()
    except Failed as e:
        print(f"FAIL  setup: {e}")
        print("0 passed, 1 failed")
        return 1
    print(f"setup: users, organisation acme, 5 repositories pushed "
          f"({time.monotonic() - started:.1f} s)")
    browser_started = time.monotonic()
    b = Browser()
    print(f"browser: {b.d.capabilities.get('browserVersion')} "
          f"({time.monotonic() - browser_started:.1f} s to start)")
    passed = failed = 0
    try:
        for number, title, fn in STEPS:
            t0 = time.monotonic()
            try:
                fn(b)
            except (Failed, WebDriverException, AssertionError) as e:
                failed += 1
                what = str(e) if isinstance(e, Failed) else traceback.format_exc(limit=3)
                print(f"FAIL  {number:2d} {title} ({time.monotonic() - t0:.1f} s)\n"
                      f"      at {b.d.current_url}\n      {what.strip()}")
                try:
                    b.screenshot(f"fail-{number:02d}")
                    b.d.get_log("browser")
                    b.d.get_log("performance")
                except WebDriverException:
                    pass
                continue
            passed += 1
            print(f"PASS  {number:2d} {title} ({time.monotonic() - t0:.1f} s)")
    finally:
        b.quit()
    print(f"screenshots: {SHOTS}/")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
