-- A bounded, storable copy of what arrived for a delivery that failed
-- validation (the id eos gave it is the row's id), and the transport's
-- position of any dead letter. Indexes on the time columns serve compaction
-- of quarantine and dead letters.
ALTER TABLE {{.P}}dead_letters ADD COLUMN invalid INTEGER NOT NULL DEFAULT 0;
-- Rows dead-lettered before this migration without an attempt are the
-- invalid deliveries of the old inbox (stored under a content-derived id,
-- key and headers dropped; a handler failure always counts one attempt):
-- marked, so that Requeue refuses them.
UPDATE {{.P}}dead_letters SET invalid = 1 WHERE attempts = 0;
ALTER TABLE {{.P}}dead_letters ADD COLUMN original_id TEXT NOT NULL DEFAULT '';
ALTER TABLE {{.P}}dead_letters ADD COLUMN position TEXT NOT NULL DEFAULT '';
ALTER TABLE {{.P}}dead_letters ADD COLUMN payload_size INTEGER NOT NULL DEFAULT 0;
CREATE INDEX {{.P}}dead_letters_at ON {{.P}}dead_letters (at);
CREATE INDEX {{.P}}inbox_quarantine_at ON {{.P}}inbox_quarantine (at);
