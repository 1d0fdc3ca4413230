-- A relay's claim reads a window of the oldest unsent rows (outbox_unsent)
-- and finds each key's head in it: nothing looks unsent rows up by key any
-- more, so the index that served it only cost every enqueue and send.
DROP INDEX IF EXISTS {{.S}}{{.P}}outbox_unsent_key;
