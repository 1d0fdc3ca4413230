-- Dedupe records: one row per (consumer, id) claimed. seq follows claim
-- order, so compaction deletes from the front without an index on time.
CREATE TABLE {{.P}}inbox (
    seq         INTEGER PRIMARY KEY,
    consumer    TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    fingerprint BLOB    NOT NULL,
    claimed_at  INTEGER NOT NULL, -- unix microseconds
    UNIQUE (consumer, id)
);

CREATE TABLE {{.P}}inbox_failures (
    consumer   TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    attempts   INTEGER NOT NULL,
    last_error TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (consumer, id)
) WITHOUT ROWID;

CREATE TABLE {{.P}}inbox_quarantine (
    seq                INTEGER PRIMARY KEY,
    consumer           TEXT    NOT NULL,
    id                 TEXT    NOT NULL,
    stored_fingerprint BLOB    NOT NULL,
    fingerprint        BLOB    NOT NULL,
    key                TEXT    NOT NULL,
    payload            BLOB,
    headers            TEXT,
    at                 INTEGER NOT NULL
);
CREATE INDEX {{.P}}inbox_quarantine_consumer ON {{.P}}inbox_quarantine (consumer, seq);

CREATE TABLE {{.P}}dead_letters (
    consumer    TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    payload     BLOB,
    headers     TEXT,
    fingerprint BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    attempts    INTEGER NOT NULL,
    last_error  TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    PRIMARY KEY (consumer, id)
) WITHOUT ROWID;

CREATE TABLE {{.P}}outbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT    NOT NULL,
    topic       TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    payload     BLOB,
    headers     TEXT,
    created_at  INTEGER NOT NULL,
    enqueued_at INTEGER NOT NULL,
    sent_at     INTEGER
);
CREATE INDEX {{.P}}outbox_unsent ON {{.P}}outbox (seq) WHERE sent_at IS NULL;
