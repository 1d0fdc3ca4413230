DROP INDEX IF EXISTS {{.P}}outbox_parked;
ALTER TABLE {{.P}}outbox DROP COLUMN parked_error;
ALTER TABLE {{.P}}outbox DROP COLUMN parked_at;
