-- The collector's review queue, pull times and namespace quotas: the
-- meaning of each is in migrations/sqlite/20261203000002_gc.sql.
CREATE TABLE gc_reviews (
    kind           TEXT    COLLATE "C" NOT NULL,
    repository_id  BIGINT  NOT NULL,
    digest         TEXT    COLLATE "C" NOT NULL,
    queued_at      BIGINT  NOT NULL,
    claimed_until  BIGINT  NOT NULL DEFAULT 0,
    claimed_by     BIGINT  NOT NULL DEFAULT 0,
    size           BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, repository_id, digest)
);
CREATE INDEX gc_reviews_by_kind ON gc_reviews (kind, queued_at);

ALTER TABLE manifests ADD COLUMN pulled_at BIGINT;

CREATE TABLE namespace_quotas (
    namespace  TEXT    COLLATE "C" PRIMARY KEY,
    bytes      BIGINT  NOT NULL
);

INSERT INTO gc_reviews (kind, repository_id, digest, queued_at)
SELECT 'link', repository_id, digest, CAST(extract(epoch FROM now()) AS BIGINT)
  FROM repository_blobs;
INSERT INTO gc_reviews (kind, repository_id, digest, queued_at)
SELECT 'manifest', m.repository_id, m.digest, CAST(extract(epoch FROM now()) AS BIGINT)
  FROM manifests m
 WHERE NOT EXISTS (SELECT 1 FROM tags t
                    WHERE t.repository_id = m.repository_id AND t.manifest_digest = m.digest);
INSERT INTO gc_reviews (kind, repository_id, digest, queued_at)
SELECT 'blob', 0, b.digest, CAST(extract(epoch FROM now()) AS BIGINT)
  FROM blobs b
 WHERE NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest);
