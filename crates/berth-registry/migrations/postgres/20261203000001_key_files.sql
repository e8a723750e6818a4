-- The token signing keys, shared by every node (auth/key_sync.rs): the files
-- of the keys directory (root.key.pem, root.crt.pem, active,
-- signing/<kid>.{key.pem,crt.pem,inactive}) by their path in it, and a
-- generation moved by every change, which each node polls to reload.
-- Written only under the `keys` advisory lock (meta/keys_sql.rs). The
-- embedded SQLite registry has one process and keeps the files only.
CREATE TABLE key_files (
    name     TEXT  PRIMARY KEY,
    content  BYTEA NOT NULL
);
CREATE TABLE key_generation (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    generation  BIGINT  NOT NULL
);
INSERT INTO key_generation (id, generation) VALUES (1, 0);
