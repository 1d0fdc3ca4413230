-- Dedupe records of package dedupe: one row per (scope, key), both kept as
-- bytes. A row is leased (token, generation, lease_expires), completed
-- (result, completed_at) or released; expires_at is when it may be deleted
-- (its key then free), never before its lease ends. Times are unix
-- microseconds.
CREATE TABLE {{.P}}dedupe (
    scope         BLOB    NOT NULL,
    key           BLOB    NOT NULL,
    state         TEXT    NOT NULL,
    fingerprint   BLOB    NOT NULL,
    token         TEXT    NOT NULL,
    generation    INTEGER NOT NULL,
    lease_expires INTEGER NOT NULL,
    result        BLOB,
    completed_at  INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE INDEX {{.P}}dedupe_expires ON {{.P}}dedupe (expires_at);
