DROP INDEX IF EXISTS {{.S}}{{.P}}outbox_parked;
ALTER TABLE {{.S}}{{.P}}outbox DROP COLUMN IF EXISTS parked_error, DROP COLUMN IF EXISTS parked_at;
