-- Storage that shrinks (gc/): the collector's review queue, pull times for
-- retention policies, and namespace quotas.
--
-- gc_reviews: what may have lost its last reference, and since when. Every
-- write that can leave something unreferenced queues it in its own
-- transaction; the collector reviews a row once it has waited the delay
-- (`--gc-delay-secs`, untagged manifests `--gc-untagged-delay-secs`),
-- checks again in the transaction that would remove it that nothing refers
-- to it, and drops the row either way. Kinds:
--   'link'     a repository's link to a blob (repository_id, digest): kept
--              while a manifest of the repository refers to the blob;
--   'manifest' a manifest (repository_id, digest): kept while tagged, an
--              index child, a referrer of a manifest that is there, or the
--              subject of a kept artifact;
--   'blob'     a blob record (repository_id 0): kept while any repository
--              links it;
--   'bytes'    a blob's bytes whose record is gone (repository_id 0, `size`
--              the bytes to reclaim): removed unless a record came back.
-- claimed_until, claimed_by: a collector processing the row, until when and
-- under which claim (another node skips it until then; a crashed one's claim
-- lapses; queueing the row again clears both).
CREATE TABLE gc_reviews (
    kind           TEXT    NOT NULL,
    repository_id  BIGINT  NOT NULL,
    digest         TEXT    NOT NULL,
    queued_at      BIGINT  NOT NULL,
    claimed_until  BIGINT  NOT NULL DEFAULT 0,
    claimed_by     BIGINT  NOT NULL DEFAULT 0,
    size           BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, repository_id, digest)
);
-- The collector claims the oldest rows of one kind at a time.
CREATE INDEX gc_reviews_by_kind ON gc_reviews (kind, queued_at);

-- When a manifest was last pulled (GET), written at most once a minute per
-- manifest (gc/pulls.rs); NULL: never since this column exists.
ALTER TABLE manifests ADD COLUMN pulled_at BIGINT;

-- Bytes a namespace may hold (its repositories' distinct blobs).
CREATE TABLE namespace_quotas (
    namespace  TEXT    PRIMARY KEY,
    bytes      BIGINT  NOT NULL
);

-- What a registry from before this migration may already hold unreferenced:
-- every blob link and every untagged manifest is reviewed once (the review
-- keeps what is referenced), and every blob no repository links.
INSERT INTO gc_reviews (kind, repository_id, digest, queued_at)
SELECT 'link', repository_id, digest, CAST(strftime('%s', 'now') AS INTEGER)
  FROM repository_blobs;
INSERT INTO gc_reviews (kind, repository_id, digest, queued_at)
SELECT 'manifest', m.repository_id, m.digest, CAST(strftime('%s', 'now') AS INTEGER)
  FROM manifests m
 WHERE NOT EXISTS (SELECT 1 FROM tags t
                    WHERE t.repository_id = m.repository_id AND t.manifest_digest = m.digest);
INSERT INTO gc_reviews (kind, repository_id, digest, queued_at)
SELECT 'blob', 0, b.digest, CAST(strftime('%s', 'now') AS INTEGER)
  FROM blobs b
 WHERE NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest);
