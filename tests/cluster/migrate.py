#!/usr/bin/env python3
"""`berth migrate` from an embedded registry into a cluster (run as
`python3 tests/cluster/migrate.py`; CI does it from .ci/test).

1. An embedded `berth serve` (SQLite and the filesystem, access control
   on) on a temporary data directory, filled through its API: a user alice
   with a personal access token, images pushed by skopeo (alice's with her
   token, the administrator's with the password; one tagged twice), files
   pushed by `berth push`. The source's digest of every tag is noted.
2. The registry is stopped, and tests/cluster/up.sh starts the cluster with
   BERTH_CLUSTER_MIGRATE_FROM: `berth migrate` copies it into the cluster's
   PostgreSQL and blob store (S3 on moto, unless BERTH_CLUSTER_BLOBS says
   otherwise) before the nodes start, then this script runs again inside it
   (`--check STATE`), which
3. pulls every image through haproxy with skopeo (every blob re-hashed) and
   checks each manifest's digest against the source's; asks every node for
   every tag; pulls the files with `berth pull`; logs in as alice with her
   password and with her token (which reaches her images, not the
   administrator's);
4. runs the official OCI conformance suite through haproxy (.ci/conformance
   with BERTH_CONFORMANCE_URL), as the migrated administrator.

About 5 MiB of images. Standard library only (and bench/lib/reg.py's
image builder). Exit status 0 when every check passed.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BERTH = os.environ.get("BERTH", os.path.join(ROOT, "target", "debug", "berth"))
REG = os.path.join(ROOT, "bench", "lib", "reg.py")
# The images: (repository, tags, layers, bytes per layer, pushed by alice).
IMAGES = [
    ("alice/app", ["v1", "latest"], 2, 512 << 10, True),
    ("alice/tools", ["1.0"], 3, 256 << 10, True),
    ("admin/base", ["v1"], 2, 768 << 10, False),
    ("admin/base", ["v2"], 1, 256 << 10, False),
]
FILE_REF = "admin/files:1"


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)


def run(cmd, env=None, stdin=None):
    p = subprocess.run(cmd, env=env, input=stdin, capture_output=True, text=True)
    check(p.returncode == 0, f"{' '.join(cmd)}: exit {p.returncode}\n{p.stdout}{p.stderr}")
    return p.stdout


def client_env(tmp, user=None, password=None):
    """The environment of a client: its own home, and a credential when given."""
    home = os.path.join(tmp, "home")
    os.makedirs(home, exist_ok=True)
    env = dict(os.environ, HOME=home, XDG_CONFIG_HOME=home, NO_COLOR="1")
    for name in ("BERTH_USERNAME", "BERTH_PASSWORD", "BERTH_REGISTRY"):
        env.pop(name, None)
    if user is not None:
        env.update(BERTH_USERNAME=user, BERTH_PASSWORD=password)
    return env


def skopeo(tmp, args):
    run(["skopeo", "--insecure-policy", *args], client_env(tmp))


def digest(tmp, ref, user, password):
    return run([BERTH, "digest", ref], client_env(tmp, user, password)).strip()


# ------------------------------------------------------------ 1. the source


def start_source(data, password, log):
    """`berth serve` on DATA; its process and host:port."""
    out = open(log, "w")
    proc = subprocess.Popen(
        [BERTH, "serve", "--listen", "127.0.0.1:0", "--data-dir", data],
        env=dict(os.environ, BERTH_ADMIN_PASSWORD=password, RUST_LOG="warn"),
        stdout=out, stderr=out)
    for _ in range(300):
        with open(log) as f:
            for line in f:
                if " listening on http://" in line:
                    return proc, line.split(" listening on http://")[1].strip()
        check(proc.poll() is None, f"berth serve exited:\n{open(log).read()}")
        time.sleep(0.1)
    raise Failed(f"berth serve did not listen within 30 s:\n{open(log).read()}")


def fill(tmp, host, password):
    """Pushes the users, token, images and files; the state to check."""
    admin = client_env(tmp, "admin", password)
    alice_password = "alice-" + os.urandom(8).hex()
    run([BERTH, "admin", "user", "create", "alice", "--password-stdin", "--registry",
         f"http://{host}"], admin, stdin=alice_password + "\n")
    pat = run([BERTH, "token", "create", "--name", "ci", "--scope", "pull,push", "--repo",
               "alice/*", "--registry", f"http://{host}"],
              client_env(tmp, "alice", alice_password)).strip()
    check(pat.startswith("berth_pat_"), f"a token: {pat[:12]}...")
    tags = []
    for i, (repo, image_tags, layers, size, by_alice) in enumerate(IMAGES):
        layout = os.path.join(tmp, f"layout-{i}")
        run([sys.executable, REG, "mkimage", layout, str(layers), str(size)])
        creds = f"alice:{pat}" if by_alice else f"admin:{password}"
        for tag in image_tags:
            skopeo(tmp, ["copy", "--dest-tls-verify=false", "--dest-creds", creds,
                         f"oci:{layout}:v1", f"docker://{host}/{repo}:{tag}"])
            tags.append((repo, tag, digest(tmp, f"{host}/{repo}:{tag}", "admin", password)))
    files = os.path.join(tmp, "files")
    os.makedirs(files)
    data = os.urandom(1 << 20)
    with open(os.path.join(files, "data.bin"), "wb") as f:
        f.write(data)
    p = subprocess.run([BERTH, "push", f"{host}/{FILE_REF}", "data.bin"], env=admin, cwd=files,
                       capture_output=True, text=True)
    check(p.returncode == 0, f"berth push: {p.stdout}{p.stderr}")
    return {
        "password": password,
        "alice_password": alice_password,
        "pat": pat,
        "tags": tags,
        "file_sha256": hashlib.sha256(data).hexdigest(),
    }


def source_then_cluster():
    tmp = tempfile.mkdtemp(prefix="berth-cluster-migrate.")
    try:
        data = os.path.join(tmp, "source")
        password = "admin-" + os.urandom(12).hex()
        proc, host = start_source(data, password, os.path.join(tmp, "source.log"))
        try:
            state = fill(tmp, host, password)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        print(f"source: {len(state['tags'])} tags and {FILE_REF} pushed to {host}; stopped")
        state_path = os.path.join(tmp, "state.json")
        with open(state_path, "w") as f:
            json.dump(state, f)
        env = dict(os.environ, BERTH_CLUSTER_MIGRATE_FROM=data, BERTH_CLUSTER_PASSWORD=password)
        env.setdefault("BERTH_CLUSTER_BLOBS", "s3")
        up = os.path.join(ROOT, "tests", "cluster", "up.sh")
        sys.stdout.flush()
        return subprocess.run(["bash", up, sys.executable, os.path.abspath(__file__), "--check",
                               state_path], env=env).returncode
    except Failed as e:
        print(f"FAIL source: {e}")
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------- 3. the cluster


def checks(state):
    lb = os.environ["BERTH_CLUSTER_URL"].removeprefix("http://")
    nodes = [n.removeprefix("http://") for n in os.environ["BERTH_CLUSTER_NODES"].split()]
    password, pat = state["password"], state["pat"]
    check(password == os.environ["BERTH_CLUSTER_PASSWORD"], "the source's administrator")
    tmp = tempfile.mkdtemp(prefix="berth-cluster-migrated.")

    def every_tag_through_the_balancer():
        for i, (repo, tag, want) in enumerate(state["tags"]):
            out = os.path.join(tmp, f"pulled-{i}")
            skopeo(tmp, ["copy", "--src-tls-verify=false", "--src-creds", f"admin:{password}",
                         f"docker://{lb}/{repo}:{tag}", f"oci:{out}:{tag}"])
            with open(os.path.join(out, "index.json")) as f:
                got = json.load(f)["manifests"][0]["digest"]
            check(got == want, f"{repo}:{tag}: {got}, the source had {want}")

    def every_tag_on_every_node():
        for repo, tag, want in state["tags"]:
            for node in nodes:
                got = digest(tmp, f"{node}/{repo}:{tag}", "admin", password)
                check(got == want, f"{repo}:{tag} on {node}: {got}, the source had {want}")

    def the_files_through_the_balancer():
        out = os.path.join(tmp, "files")
        run([BERTH, "pull", f"{lb}/{FILE_REF}", out], client_env(tmp, "admin", password))
        with open(os.path.join(out, "data.bin"), "rb") as f:
            check(hashlib.sha256(f.read()).hexdigest() == state["file_sha256"], "data.bin")

    def alice_logs_in_with_her_password_and_her_token():
        repo, tag, want = state["tags"][0]
        ref = f"{lb}/{repo}:{tag}"
        check(digest(tmp, ref, "alice", state["alice_password"]) == want, "alice's password")
        check(digest(tmp, ref, "alice", pat) == want, "alice's token")
        p = subprocess.run([BERTH, "digest", f"{lb}/admin/base:v1"],
                           env=client_env(tmp, "alice", pat), capture_output=True, text=True)
        check(p.returncode != 0, "alice's token reaches admin/base")

    def the_oci_conformance_suite_through_the_balancer():
        env = dict(os.environ, BERTH_CONFORMANCE_URL=f"http://{lb}",
                   BERTH_CONFORMANCE_PASSWORD=password)
        p = subprocess.run(["bash", os.path.join(ROOT, ".ci", "conformance")], env=env,
                           capture_output=True, text=True)
        summary = [line for line in p.stdout.splitlines()
                   if line.startswith(("suite-pushes:", "preseeded:", "conformance:"))]
        print("\n".join("     " + line for line in summary))
        check(p.returncode == 0, f".ci/conformance: exit {p.returncode}\n{p.stdout[-3000:]}"
              f"{p.stderr[-2000:]}")

    tests = [every_tag_through_the_balancer, every_tag_on_every_node,
             the_files_through_the_balancer, alice_logs_in_with_her_password_and_her_token,
             the_oci_conformance_suite_through_the_balancer]
    failed = 0
    for t in tests:
        started = time.time()
        try:
            t()
            print(f"ok   {t.__name__} ({time.time() - started:.1f} s)")
        except (Exception, SystemExit) as e:  # every check runs; failures counted
            failed += 1
            print(f"FAIL {t.__name__}: {e}")
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"cluster migrate: {len(tests) - failed} passed, {failed} failed")
    return 1 if failed else 0


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        with open(sys.argv[2]) as f:
            return checks(json.load(f))
    if len(sys.argv) != 1:
        print("usage: python3 tests/cluster/migrate.py", file=sys.stderr)
        return 2
    return source_then_cluster()


if __name__ == "__main__":
    sys.exit(main())
