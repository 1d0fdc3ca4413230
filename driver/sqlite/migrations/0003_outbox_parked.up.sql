-- A parked row is one the relay can never publish as it is (the broker
-- refuses it for good). It stays unsent, with its error, and blocks the
-- later rows of its key until an operator requeues or deletes it. The
-- partial index finds a key's parked rows; it is empty while all is well.
ALTER TABLE {{.P}}outbox ADD COLUMN parked_at INTEGER; -- unix microseconds
ALTER TABLE {{.P}}outbox ADD COLUMN parked_error TEXT;
CREATE INDEX {{.P}}outbox_parked ON {{.P}}outbox (key, seq) WHERE parked_at IS NOT NULL;
