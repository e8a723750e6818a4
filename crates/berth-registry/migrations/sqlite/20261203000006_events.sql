-- Events and their deliveries to webhook endpoints (events/, meta/events_sql.rs).
--
-- An event is written in the transaction of the change it describes, with
-- one delivery per endpoint its repository and action route it to; its
-- document is the exact CloudEvents JSON every attempt sends.
-- AUTOINCREMENT: ids are never reused after old events are pruned, so an id
-- an operator saw in `berth admin events list` names one event for good.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT    NOT NULL,
    repository  TEXT    NOT NULL,
    type        TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    document    TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);
CREATE INDEX events_by_time ON events (created_at);

-- state: 'pending' (to be attempted), 'delivered' (a 2xx came back),
-- 'failed' (every attempt refused or timed out; redelivered on demand).
CREATE TABLE event_deliveries (
    event        BIGINT  NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    endpoint     TEXT    NOT NULL,
    repository   TEXT    NOT NULL,
    chain        TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    attempts     BIGINT  NOT NULL DEFAULT 0,
    last_status  BIGINT,
    last_error   TEXT,
    updated_at   BIGINT  NOT NULL,
    PRIMARY KEY (endpoint, event)
);
CREATE INDEX event_deliveries_by_chain ON event_deliveries (endpoint, chain, state, event);
CREATE INDEX event_deliveries_by_event ON event_deliveries (event);
CREATE INDEX event_deliveries_by_state ON event_deliveries (state, event);

-- chain: what orders deliveries to an endpoint: the repository for
-- changes, the repository and " pull" for sampled pulls (a name cannot hold
-- a space), so that pulls never hold up the pushes and deletes of their
-- repository, nor these the pulls.
--
-- One row per (endpoint, chain) with a pending delivery: head is its
-- first pending event (deliveries of a chain go in order), due_at_ms
-- when it may be attempted, moved ahead by a node attempting it (a lease that
-- lapses if the node dies) and by a retry's delay.
CREATE TABLE event_chains (
    endpoint    TEXT    NOT NULL,
    chain       TEXT    NOT NULL,
    head        BIGINT  NOT NULL,
    due_at_ms   BIGINT  NOT NULL,
    PRIMARY KEY (endpoint, chain)
);
CREATE INDEX event_chains_by_due ON event_chains (due_at_ms);
