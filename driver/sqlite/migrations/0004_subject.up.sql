-- The subject a message was delivered on (eos.Message.Subject): a dead
-- letter keeps it so that Requeue hands the handler the message it failed
-- on; a quarantined conflict keeps the subject of the conflicting delivery.
-- Rows from before this migration have none ('').
ALTER TABLE {{.P}}dead_letters ADD COLUMN subject TEXT NOT NULL DEFAULT '';
ALTER TABLE {{.P}}inbox_quarantine ADD COLUMN subject TEXT NOT NULL DEFAULT '';
