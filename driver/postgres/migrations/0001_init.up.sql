-- {{.S}} is "schema." or empty (search_path); {{.P}} is the table prefix.
-- Index names take no schema: an index lives in its table's schema.

-- Dedupe records: one row per (consumer, id) claimed. Rows arrive in claim
-- order, so a BRIN index on claimed_at (tiny, cheap to maintain) serves
-- compaction.
CREATE TABLE {{.S}}{{.P}}inbox (
    consumer    text        NOT NULL,
    id          text        COLLATE "C" NOT NULL,
    fingerprint bytea       NOT NULL,
    claimed_at  timestamptz NOT NULL,
    PRIMARY KEY (consumer, id)
);
CREATE INDEX {{.P}}inbox_claimed_at ON {{.S}}{{.P}}inbox USING brin (claimed_at);

CREATE TABLE {{.S}}{{.P}}inbox_failures (
    consumer   text        NOT NULL,
    id         text        COLLATE "C" NOT NULL,
    attempts   integer     NOT NULL,
    last_error text        NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (consumer, id)
);

CREATE TABLE {{.S}}{{.P}}inbox_quarantine (
    seq                bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    consumer           text        NOT NULL,
    id                 text        COLLATE "C" NOT NULL,
    stored_fingerprint bytea       NOT NULL,
    fingerprint        bytea       NOT NULL,
    key                text        NOT NULL,
    payload            bytea,
    headers            text, -- JSON object
    at                 timestamptz NOT NULL
);
CREATE INDEX {{.P}}inbox_quarantine_consumer ON {{.S}}{{.P}}inbox_quarantine (consumer, seq);

CREATE TABLE {{.S}}{{.P}}dead_letters (
    consumer    text        NOT NULL,
    id          text        COLLATE "C" NOT NULL,
    key         text        NOT NULL,
    payload     bytea,
    headers     text, -- JSON object
    fingerprint bytea       NOT NULL,
    created_at  timestamptz NOT NULL,
    attempts    integer     NOT NULL,
    last_error  text        NOT NULL,
    at          timestamptz NOT NULL,
    PRIMARY KEY (consumer, id)
);

-- seq is the order of the outbox. The partial indexes cover what relays
-- read: unsent rows in order, and per key (to find each key's head).
CREATE TABLE {{.S}}{{.P}}outbox (
    seq         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          text        NOT NULL,
    topic       text        NOT NULL,
    key         text        NOT NULL,
    payload     bytea,
    headers     text, -- JSON object
    created_at  timestamptz NOT NULL,
    enqueued_at timestamptz NOT NULL,
    sent_at     timestamptz
);
CREATE INDEX {{.P}}outbox_unsent ON {{.S}}{{.P}}outbox (seq) WHERE sent_at IS NULL;
CREATE INDEX {{.P}}outbox_unsent_key ON {{.S}}{{.P}}outbox (key, seq) WHERE sent_at IS NULL;
