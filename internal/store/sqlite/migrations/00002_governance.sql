-- Governance: the hash-chained audit log, governed objects (exceptions,
-- trusted ARC sealers, settings) with their hit counters, and the marks
-- that make each notification go out once. Times are Unix nanoseconds
-- (UTC).

-- +goose Up
-- seq is assigned by the appender (head + 1) inside the transaction that
-- holds the write lock; it is part of what hash covers.
CREATE TABLE audit (
    seq         INTEGER PRIMARY KEY,
    time        INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    object_type TEXT    NOT NULL,
    object_id   TEXT    NOT NULL,
    before      TEXT,             -- JSON, NULL when there was none
    after       TEXT,             -- JSON, NULL when there is none
    prev_hash   TEXT    NOT NULL,
    hash        TEXT    NOT NULL,
    mac         TEXT    NOT NULL  -- '' without a key
);
CREATE INDEX audit_time   ON audit (time);
CREATE INDEX audit_actor  ON audit (actor, seq);
CREATE INDEX audit_action ON audit (action, seq);
CREATE INDEX audit_object ON audit (object_type, object_id, seq);

CREATE TABLE governed (
    kind       TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    expires_at INTEGER NOT NULL, -- 0: never
    data       TEXT    NOT NULL, -- the object as JSON
    version    INTEGER NOT NULL CHECK (version >= 1),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;

CREATE TABLE governed_hits (
    kind      TEXT    NOT NULL,
    id        TEXT    NOT NULL,
    hits      INTEGER NOT NULL CHECK (hits >= 0),
    last_used INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;

CREATE TABLE notified (
    kind TEXT    NOT NULL,
    key  TEXT    NOT NULL,
    at   INTEGER NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE INDEX notified_at ON notified (at);

-- +goose Down
DROP TABLE notified;
DROP TABLE governed_hits;
DROP TABLE governed;
DROP TABLE audit;
