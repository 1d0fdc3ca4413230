CREATE INDEX IF NOT EXISTS {{.P}}outbox_unsent_key ON {{.S}}{{.P}}outbox (key, seq) WHERE sent_at IS NULL;
