-- Trust rules (workload identity, trust/): which OpenID Connect ID tokens a
-- namespace accepts in exchange for registry tokens, and what they grant.
--
-- namespace is a user's or an organisation's name (users and organisations
-- share one namespace); the deletion of either removes its rules, in the
-- same transaction (meta/identity_sql.rs), with a revocation record per rule.
-- claims is a JSON object (claim name -> exact value or glob), actions a
-- comma list (`pull,push`), repositories a JSON array of patterns inside
-- the namespace (`["acme/app", "acme/*"]`). Rules are looked up by issuer
-- at each exchange.
CREATE TABLE trust_rules (
    id            INTEGER PRIMARY KEY,
    namespace     TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    issuer        TEXT    NOT NULL,
    audience      TEXT    NOT NULL,
    claims        TEXT    NOT NULL,
    actions       TEXT    NOT NULL,
    repositories  TEXT    NOT NULL,
    created_by    TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    UNIQUE (namespace, name)
);
CREATE INDEX trust_rules_by_issuer ON trust_rules (issuer);
