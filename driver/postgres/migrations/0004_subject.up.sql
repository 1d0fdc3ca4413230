-- The subject a message was delivered on (eos.Message.Subject): a dead
-- letter keeps it so that Requeue hands the handler the message it failed
-- on; a quarantined conflict keeps the subject of the conflicting delivery.
-- Rows from before this migration have none (''). A constant default adds
-- the column without rewriting the table.
ALTER TABLE {{.S}}{{.P}}dead_letters ADD COLUMN subject text NOT NULL DEFAULT '';
ALTER TABLE {{.S}}{{.P}}inbox_quarantine ADD COLUMN subject text NOT NULL DEFAULT '';
