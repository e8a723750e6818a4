"""Push an artifact to berth with the ORAS Python SDK, pull it back, then push
a second artifact whose subject is the first. Prints one JSON line for the
Rust test to check: {"pulled_equal", "subject", "referrer"}."""

import json
import os
import sys

import oras.client
import oras.oci

host = sys.argv[1]
repo = f"{host}/e2e/oras"
client = oras.client.OrasClient(hostname=host, insecure=True)
# A token the test fetched for pull,push on the repository. oras-py (0.2.43)
# keeps the first token it gets and fetches a new one only after a 403, while
# token registries (berth, CNCF distribution) answer a token that lacks scope
# with 401 insufficient_scope, as containerd and docker expect: its first
# request (a blob HEAD, pull scope) would pin a pull-only token for the push.
client.auth.set_token_auth(os.environ["BERTH_TOKEN"])
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def head(tag):
    """The digest and size berth reports for a tag."""
    response = client.do_request(
        f"http://{host}/v2/e2e/oras/manifests/{tag}", "HEAD", headers={"Accept": MANIFEST}
    )
    assert response.status_code == 200, response.status_code
    return response.headers["Docker-Content-Digest"], int(response.headers["Content-Length"])


with open("artifact.bin", "wb") as f:
    f.write(os.urandom(64 * 1024))
client.push(files=["artifact.bin"], target=f"{repo}:v1", disable_path_validation=True)

os.makedirs("pulled", exist_ok=True)
paths = client.pull(target=f"{repo}:v1", outdir="pulled")
with open("artifact.bin", "rb") as a, open(paths[0], "rb") as b:
    pulled_equal = a.read() == b.read()

subject_digest, subject_size = head("v1")
with open("signature.txt", "w") as f:
    f.write("signed")
client.push(
    files=["signature.txt"],
    target=f"{repo}:sig",
    subject=oras.oci.Subject(mediaType=MANIFEST, digest=subject_digest, size=subject_size),
    disable_path_validation=True,
)
referrer_digest, _ = head("sig")
print(json.dumps({"pulled_equal": pulled_equal, "subject": subject_digest, "referrer": referrer_digest}))
