-- The web interface (ui/): signed-in browser sessions, and the index its
-- repository page pages tags by (newest push first, 10,000 tags and more).
--
-- A session is found by the SHA-256 of its cookie's secret (never stored).
-- pat_id is the personal access token it was signed in with, if any: the
-- session then carries that token's limits, and ends when the token is
-- revoked or expires (the lookup checks). A password change deletes the
-- user's sessions in the transaction that sets it (meta/identity_sql.rs);
-- deleting the user or the token deletes them through the foreign keys.
-- Not copied by `berth migrate`: a browser signs in again.
CREATE TABLE ui_sessions (
    id           INTEGER PRIMARY KEY,
    secret_hash  BLOB    NOT NULL UNIQUE,
    user_id      BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    pat_id       BIGINT  REFERENCES personal_access_tokens (id) ON DELETE CASCADE,
    created_at   BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL
);
CREATE INDEX ui_sessions_by_user ON ui_sessions (user_id);
CREATE INDEX ui_sessions_by_expiry ON ui_sessions (expires_at);

CREATE INDEX tags_by_push ON tags (repository_id, updated_at, name);
