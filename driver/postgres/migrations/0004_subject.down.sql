ALTER TABLE {{.S}}{{.P}}inbox_quarantine DROP COLUMN IF EXISTS subject;
ALTER TABLE {{.S}}{{.P}}dead_letters DROP COLUMN IF EXISTS subject;
