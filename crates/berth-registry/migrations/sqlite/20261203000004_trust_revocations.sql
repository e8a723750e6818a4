-- Revocations of a removed trust rule ('trust' + rule id: the registry
-- tokens a workload's ID token was exchanged for through it, claim
-- `berth_trust`). SQLite cannot change a CHECK constraint in place: the
-- table is rebuilt with its rows and its AUTOINCREMENT sequence, which must
-- not go back (a generation only grows: an id handed out again would not
-- revoke the tokens issued after the first one).
CREATE TABLE revocations_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL CHECK (kind IN ('subject', 'login', 'pat', 'trust', 'repository')),
    target      TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    keep_until  BIGINT  NOT NULL
);
INSERT INTO revocations_new (id, kind, target, created_at, keep_until)
    SELECT id, kind, target, created_at, keep_until FROM revocations;
DELETE FROM sqlite_sequence WHERE name = 'revocations_new';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'revocations_new', seq FROM sqlite_sequence WHERE name = 'revocations';
DROP TABLE revocations;
ALTER TABLE revocations_new RENAME TO revocations;
CREATE INDEX revocations_by_keep_until ON revocations (keep_until);
