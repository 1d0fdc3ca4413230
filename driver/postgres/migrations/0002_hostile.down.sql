DROP INDEX IF EXISTS {{.S}}{{.P}}inbox_quarantine_at;
DROP INDEX IF EXISTS {{.S}}{{.P}}dead_letters_at;
ALTER TABLE {{.S}}{{.P}}dead_letters DROP COLUMN payload_size;
ALTER TABLE {{.S}}{{.P}}dead_letters DROP COLUMN position;
ALTER TABLE {{.S}}{{.P}}dead_letters DROP COLUMN original_id;
ALTER TABLE {{.S}}{{.P}}dead_letters DROP COLUMN invalid;
