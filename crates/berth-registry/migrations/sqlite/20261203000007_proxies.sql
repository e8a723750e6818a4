-- Pull-through cache namespaces added through the admin API (proxy/): those
-- of the configuration file and flags are not stored. No secret is stored:
-- an upstream account's password is read from password_file, a path on the
-- registry's machines. Every node reads this table every few seconds.
CREATE TABLE proxies (
    name           TEXT    PRIMARY KEY,
    url            TEXT    NOT NULL,
    access         TEXT    NOT NULL,
    username       TEXT,
    password_file  TEXT,
    tag_ttl_secs   BIGINT  NOT NULL,
    created_at     BIGINT  NOT NULL
);
