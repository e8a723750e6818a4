"""berth's files-as-an-artifact against the ORAS Python SDK (oras 0.2.43).

  oras_files.py pull HOST REPO:TAG OUTDIR     prints the paths written, as JSON
  oras_files.py push HOST REPO:TAG FILE[:TYPE]...  (files relative to the cwd)

BERTH_TOKEN holds a token for pull,push on the repository (see
oras_roundtrip.py for why the SDK is given one)."""

import json
import os
import sys

import oras.client

mode, host, target = sys.argv[1], sys.argv[2], sys.argv[3]
client = oras.client.OrasClient(hostname=host, insecure=True)
client.auth.set_token_auth(os.environ["BERTH_TOKEN"])
if mode == "pull":
    outdir = sys.argv[4]
    os.makedirs(outdir, exist_ok=True)
    print(json.dumps(client.pull(target=f"{host}/{target}", outdir=outdir)))
elif mode == "push":
    client.push(files=sys.argv[4:], target=f"{host}/{target}", disable_path_validation=True)
    print(json.dumps({"pushed": target}))
else:
    sys.exit(f"unknown mode {mode}")
