-- A bounded, storable copy of what arrived for a delivery that failed
-- validation (the id eos gave it is the row's id), and the transport's
-- position of any dead letter. Indexes on the time columns serve compaction
-- of quarantine and dead letters.
ALTER TABLE {{.S}}{{.P}}dead_letters ADD COLUMN invalid boolean NOT NULL DEFAULT false;
-- Rows dead-lettered before this migration without an attempt are the
-- invalid deliveries of the old inbox (stored under a content-derived id,
-- key and headers dropped; a handler failure always counts one attempt):
-- marked, so that Requeue refuses them.
UPDATE {{.S}}{{.P}}dead_letters SET invalid = true WHERE attempts = 0;
ALTER TABLE {{.S}}{{.P}}dead_letters ADD COLUMN original_id text NOT NULL DEFAULT '';
ALTER TABLE {{.S}}{{.P}}dead_letters ADD COLUMN position text NOT NULL DEFAULT '';
ALTER TABLE {{.S}}{{.P}}dead_letters ADD COLUMN payload_size bigint NOT NULL DEFAULT 0;
CREATE INDEX {{.P}}dead_letters_at ON {{.S}}{{.P}}dead_letters (at);
CREATE INDEX {{.P}}inbox_quarantine_at ON {{.S}}{{.P}}inbox_quarantine (at);
