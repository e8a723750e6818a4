-- Revocations: changes of rights that tokens issued before them must not
-- outlive (auth/revocation.rs). A token carries the highest revocation id its
-- issuer had seen (claim `berth_gen`); a record applies to the tokens whose
-- `berth_gen` is below its id.
--
-- kind/target: 'subject' + user name (every token of the subject: a deleted
-- user or robot, a membership removed or lowered), 'login' + user name (its
-- tokens from a password or refresh token: a changed password), 'pat' + token
-- id (a revoked personal access token), 'repository' + name (a repository made
-- private or deleted).
--
-- AUTOINCREMENT: ids are never reused, even after old rows are pruned, so a
-- generation only grows. SQLite serialises writers, so ids become visible in
-- their order; a PostgreSQL store must serialise the writers of this table
-- too (a sequence alone is not commit-ordered).
--
-- keep_until: the moment every token the record could affect has expired
-- (token lifetime + verification leeway + a margin, from when it was written);
-- rows past it are pruned.
CREATE TABLE revocations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL CHECK (kind IN ('subject', 'login', 'pat', 'repository')),
    target      TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    keep_until  BIGINT  NOT NULL
);
CREATE INDEX revocations_by_keep_until ON revocations (keep_until);
