-- Identities: users, organisations, memberships, personal access tokens and
-- refresh tokens. Portable SQL: the PostgreSQL schema mirrors it with
-- BIGINT identity keys and BYTEA for the hashes.
--
-- Users and organisations share one namespace (the first component of a
-- repository name): no name is both a user's and an organisation's. The
-- create transactions (meta/identity_sqlite.rs) enforce it; each table's
-- UNIQUE enforces it within the table.

-- Organisations: namespaces shared by several users.
CREATE TABLE organizations (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    created_at  BIGINT  NOT NULL
);

-- Users: people, and robot accounts (robot_of set: the organisation a robot
-- belongs to; robots have no password). password_hash is an argon2id PHC
-- string or an imported bcrypt hash; NULL means no password login.
CREATE TABLE users (
    id             INTEGER PRIMARY KEY,
    name           TEXT    NOT NULL UNIQUE,
    password_hash  TEXT,
    is_admin       BOOLEAN NOT NULL DEFAULT FALSE,
    robot_of       INTEGER REFERENCES organizations (id) ON DELETE CASCADE,
    created_at     BIGINT  NOT NULL
);
CREATE INDEX users_by_robot_of ON users (robot_of);

-- Who belongs to which organisation, and with which role.
CREATE TABLE memberships (
    org_id   INTEGER NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role     TEXT    NOT NULL CHECK (role IN ('member', 'maintainer', 'owner')),
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships (user_id);

-- Personal access tokens: only the SHA-256 of the secret is kept, and looked
-- up by it. actions is a comma list (`pull,push`); repositories a JSON array
-- of patterns (`["acme/*"]`, empty = all the user may reach). A revoked token
-- keeps its row (revoked_at set) until a new token takes its name.
CREATE TABLE personal_access_tokens (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    secret_hash   BLOB    NOT NULL UNIQUE,
    actions       TEXT    NOT NULL,
    repositories  TEXT    NOT NULL,
    expires_at    BIGINT  NOT NULL,
    created_at    BIGINT  NOT NULL,
    last_used_at  BIGINT,
    revoked_at    BIGINT,
    UNIQUE (user_id, name)
);

-- Refresh tokens handed out by the token service (OAuth2 `refresh_token`
-- grant): only the SHA-256 of the secret is kept.
CREATE TABLE refresh_tokens (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    secret_hash  BLOB    NOT NULL UNIQUE,
    expires_at   BIGINT  NOT NULL,
    created_at   BIGINT  NOT NULL,
    revoked_at   BIGINT
);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens (user_id);
