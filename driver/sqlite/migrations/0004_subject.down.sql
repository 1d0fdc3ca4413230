ALTER TABLE {{.P}}inbox_quarantine DROP COLUMN subject;
ALTER TABLE {{.P}}dead_letters DROP COLUMN subject;
