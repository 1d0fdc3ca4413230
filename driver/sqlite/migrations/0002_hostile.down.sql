DROP INDEX IF EXISTS {{.P}}inbox_quarantine_at;
DROP INDEX IF EXISTS {{.P}}dead_letters_at;
ALTER TABLE {{.P}}dead_letters DROP COLUMN payload_size;
ALTER TABLE {{.P}}dead_letters DROP COLUMN position;
ALTER TABLE {{.P}}dead_letters DROP COLUMN original_id;
ALTER TABLE {{.P}}dead_letters DROP COLUMN invalid;
