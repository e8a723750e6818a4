#!/usr/bin/env python3
"""Fill a stopped embedded berth registry for bench/gc.sh (standard library only).

  gc_fill.py DATA_DIR ROWS GARBAGE
  gc_fill.py DATA_DIR 0 GARBAGE --more SEED

Writes ROWS blob records into DATA_DIR/berth.db, ROWS - GARBAGE of them named
by tagged manifests (100 layers each, over 100 repositories of namespace
`bench`) and GARBAGE linked in a repository but named by no manifest, queued
for review two days ago (as the collector's queue holds them once the delay
has passed); the garbage blobs' bytes are written under DATA_DIR/blobs (the
referenced ones' are not: the collector never reads them). With --more, only
GARBAGE more unreferenced blobs (named after SEED) in the repositories there.
Prints "<rows> <garbage> <seconds>".
"""

import hashlib
import json
import os
import sqlite3
import sys
import time

REPOS = 100
LAYERS = 100
MEDIA = "application/vnd.oci.image.manifest.v1+json"


def digest(data):
    return hashlib.sha256(data).hexdigest()


def main():
    data, rows, garbage = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    more = sys.argv[5] if len(sys.argv) > 5 and sys.argv[4] == "--more" else None
    started = time.time()
    now = int(started)
    db = sqlite3.connect(os.path.join(data, "berth.db"))
    db.execute("PRAGMA synchronous=OFF")
    if more is not None:
        ids = [row[0] for row in db.execute("SELECT id FROM repositories WHERE namespace = 'bench' ORDER BY name")]
        add_garbage(db, data, ids, garbage, now, f"more {more}")
        db.commit()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        print(0, garbage, f"{time.time() - started:.1f}")
        return
    db.executemany(
        "INSERT INTO repositories (name, namespace, public, created_at) VALUES (?, 'bench', 0, ?)",
        [(f"bench/r{i:03}", now) for i in range(REPOS)],
    )
    ids = [row[0] for row in db.execute("SELECT id FROM repositories WHERE namespace = 'bench' ORDER BY name")]
    manifests = (rows - garbage) // LAYERS
    for m in range(manifests):
        repo = ids[m % REPOS]
        layers = ["sha256:" + digest(f"ref-{m}-{j}".encode()) for j in range(LAYERS)]
        content = json.dumps({
            "schemaVersion": 2,
            "mediaType": MEDIA,
            "layers": [{"digest": d, "size": 1000} for d in layers],
        }).encode()
        man = "sha256:" + digest(content)
        db.execute(
            "INSERT INTO manifests (repository_id, digest, media_type, content, created_at) VALUES (?, ?, ?, ?, ?)",
            (repo, man, MEDIA, content, now),
        )
        db.execute(
            "INSERT INTO tags (repository_id, name, manifest_digest, updated_at) VALUES (?, ?, ?, ?)",
            (repo, f"t{m}", man, now),
        )
        db.executemany(
            "INSERT INTO blobs (digest, size, created_at) VALUES (?, 1000, ?)",
            [(d, now) for d in layers],
        )
        db.executemany(
            "INSERT INTO repository_blobs (repository_id, digest, created_at) VALUES (?, ?, ?)",
            [(repo, d, now) for d in layers],
        )
        db.executemany(
            "INSERT INTO manifest_references (repository_id, manifest_digest, child_digest, is_manifest) VALUES (?, ?, ?, 0)",
            [(repo, man, d) for d in layers],
        )
    add_garbage(db, data, ids, garbage, now, "garbage")
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    print(manifests * LAYERS + garbage, garbage, f"{time.time() - started:.1f}")


def add_garbage(db, data, ids, garbage, now, label):
    """GARBAGE blobs linked but named by no manifest, queued two days ago, with their bytes."""
    queued = now - 2 * 86400
    batch = []
    for g in range(garbage):
        content = f"{label} blob {g}\n".encode()
        hexd = digest(content)
        path = os.path.join(data, "blobs", "sha256", hexd[:2])
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, hexd), "wb") as f:
            f.write(content)
        batch.append((ids[g % REPOS], "sha256:" + hexd, len(content)))
    db.executemany("INSERT INTO blobs (digest, size, created_at) VALUES (?, ?, ?)",
                   [(d, size, queued) for _, d, size in batch])
    db.executemany("INSERT INTO repository_blobs (repository_id, digest, created_at) VALUES (?, ?, ?)",
                   [(repo, d, queued) for repo, d, _ in batch])
    db.executemany("INSERT INTO gc_reviews (kind, repository_id, digest, queued_at) VALUES ('link', ?, ?, ?)",
                   [(repo, d, queued) for repo, d, _ in batch])


if __name__ == "__main__":
    main()
