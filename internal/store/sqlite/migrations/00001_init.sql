-- Schema of the embedded store. Times are Unix nanoseconds (UTC).
-- seq is the insertion order: it breaks ties of received_at in listings
-- and is the rowid every index carries, so "ORDER BY received_at, seq"
-- is served by any index ending in received_at.

-- +goose Up
CREATE TABLE evidence (
    seq                INTEGER PRIMARY KEY,
    id                 TEXT    NOT NULL UNIQUE,
    received_at        INTEGER NOT NULL,
    listener           TEXT    NOT NULL,
    action             TEXT    NOT NULL CHECK (action IN ('deliver', 'quarantine', 'reject', 'defer')),
    rule               TEXT    NOT NULL,
    exception          TEXT    NOT NULL,
    config_version     TEXT    NOT NULL,
    mail_from          TEXT    NOT NULL,
    mail_from_domain   TEXT    NOT NULL,
    header_from        TEXT    NOT NULL,
    header_from_domain TEXT    NOT NULL,
    message_id         TEXT    NOT NULL,
    record             TEXT    NOT NULL -- the evidence.Record as JSON
);
CREATE INDEX evidence_received           ON evidence (received_at);
CREATE INDEX evidence_action             ON evidence (action, received_at);
CREATE INDEX evidence_rule               ON evidence (rule, received_at);
CREATE INDEX evidence_listener           ON evidence (listener, received_at);
CREATE INDEX evidence_exception          ON evidence (exception, received_at);
CREATE INDEX evidence_mail_from          ON evidence (mail_from, received_at);
CREATE INDEX evidence_mail_from_domain   ON evidence (mail_from_domain, received_at);
CREATE INDEX evidence_header_from        ON evidence (header_from, received_at);
CREATE INDEX evidence_header_from_domain ON evidence (header_from_domain, received_at);
CREATE INDEX evidence_message_id         ON evidence (message_id, received_at);

-- One row per distinct envelope recipient of a record. received_at is
-- copied from the record so that a recipient's records are read from the
-- index already in time order.
CREATE TABLE evidence_rcpt (
    evidence_seq INTEGER NOT NULL REFERENCES evidence (seq) ON DELETE CASCADE,
    rcpt         TEXT    NOT NULL,
    domain       TEXT    NOT NULL,
    received_at  INTEGER NOT NULL,
    PRIMARY KEY (evidence_seq, rcpt)
) WITHOUT ROWID;
CREATE INDEX evidence_rcpt_rcpt   ON evidence_rcpt (rcpt, received_at);
CREATE INDEX evidence_rcpt_domain ON evidence_rcpt (domain);

CREATE TABLE quarantine (
    seq         INTEGER PRIMARY KEY,
    id          TEXT    NOT NULL UNIQUE,
    recipients  TEXT    NOT NULL, -- JSON array, as given
    sender      TEXT    NOT NULL, -- as given
    sender_norm TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    received_at INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('held', 'release-requested', 'released', 'deleted')),
    size        INTEGER NOT NULL CHECK (size >= 0),
    sha256      TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL,
    updated_by  TEXT    NOT NULL
);
CREATE INDEX quarantine_received ON quarantine (received_at);
CREATE INDEX quarantine_expires  ON quarantine (expires_at);
CREATE INDEX quarantine_state    ON quarantine (state, received_at);
CREATE INDEX quarantine_sender   ON quarantine (sender_norm, received_at);

CREATE TABLE quarantine_rcpt (
    quarantine_seq INTEGER NOT NULL REFERENCES quarantine (seq) ON DELETE CASCADE,
    rcpt           TEXT    NOT NULL,
    PRIMARY KEY (quarantine_seq, rcpt)
) WITHOUT ROWID;
CREATE INDEX quarantine_rcpt_rcpt ON quarantine_rcpt (rcpt);

CREATE TABLE config_version (
    hash       TEXT    PRIMARY KEY,
    yaml       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

-- +goose Down
DROP TABLE config_version;
DROP TABLE quarantine_rcpt;
DROP TABLE quarantine;
DROP TABLE evidence_rcpt;
DROP TABLE evidence;
