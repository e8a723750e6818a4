-- berth metadata, first schema. Portable SQL: the PostgreSQL schema mirrors it
-- with BIGINT/BYTEA/TEXT COLLATE "C" where SQLite's types are looser.

-- A repository exists once something was pushed to it (a blob link or a manifest).
CREATE TABLE repositories (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    created_at  BIGINT  NOT NULL
);

-- Every blob the store holds, once, by digest.
CREATE TABLE blobs (
    digest      TEXT    PRIMARY KEY,
    size        BIGINT  NOT NULL,
    created_at  BIGINT  NOT NULL
);

-- A blob is readable in a repository only when linked there.
CREATE TABLE repository_blobs (
    repository_id INTEGER NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    digest        TEXT    NOT NULL REFERENCES blobs (digest),
    created_at    BIGINT  NOT NULL,
    PRIMARY KEY (repository_id, digest)
);
CREATE INDEX repository_blobs_by_digest ON repository_blobs (digest);

-- Manifests: the exact bytes pushed, per repository.
CREATE TABLE manifests (
    repository_id  INTEGER NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    digest         TEXT    NOT NULL,
    media_type     TEXT    NOT NULL,
    content        BLOB    NOT NULL,
    subject        TEXT,
    artifact_type  TEXT,
    annotations    TEXT,
    created_at     BIGINT  NOT NULL,
    PRIMARY KEY (repository_id, digest)
);
CREATE INDEX manifests_by_subject ON manifests (repository_id, subject);

-- What a manifest refers to: blobs (config, layers) and child manifests (index).
CREATE TABLE manifest_references (
    repository_id   INTEGER NOT NULL,
    manifest_digest TEXT    NOT NULL,
    child_digest    TEXT    NOT NULL,
    is_manifest     BOOLEAN NOT NULL,
    PRIMARY KEY (repository_id, manifest_digest, child_digest),
    FOREIGN KEY (repository_id, manifest_digest)
        REFERENCES manifests (repository_id, digest) ON DELETE CASCADE
);
CREATE INDEX manifest_references_by_child ON manifest_references (repository_id, child_digest);

CREATE TABLE tags (
    repository_id   INTEGER NOT NULL,
    name            TEXT    NOT NULL,
    manifest_digest TEXT    NOT NULL,
    updated_at      BIGINT  NOT NULL,
    PRIMARY KEY (repository_id, name),
    FOREIGN KEY (repository_id, manifest_digest)
        REFERENCES manifests (repository_id, digest) ON DELETE CASCADE
);

-- Upload sessions live here, not in process memory, so that a restarted
-- process (or another node) continues them.
CREATE TABLE uploads (
    id          TEXT    PRIMARY KEY,
    repository  TEXT    NOT NULL,
    byte_offset BIGINT  NOT NULL,
    hash_state  BLOB    NOT NULL,
    staging     TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);
CREATE INDEX uploads_by_updated_at ON uploads (updated_at);
