-- Dedupe records of package dedupe: one row per (scope, key), both kept as
-- bytes (any bytes, compared bytewise). A row is leased (token, generation,
-- lease_expires), completed (result, completed_at) or released; expires_at
-- is when it may be deleted (its key then free), never before its lease
-- ends.
CREATE TABLE {{.S}}{{.P}}dedupe (
    scope         bytea       NOT NULL,
    key           bytea       NOT NULL,
    state         text        NOT NULL,
    fingerprint   bytea       NOT NULL,
    token         text        NOT NULL,
    generation    bigint      NOT NULL,
    lease_expires timestamptz NOT NULL,
    result        bytea,
    completed_at  timestamptz,
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX {{.P}}dedupe_expires ON {{.S}}{{.P}}dedupe (expires_at);
