-- Stream mode: the offset of the next record each consumer applies per
-- topic partition, moved in the transaction of the records' effects.
CREATE TABLE {{.P}}offsets (
    consumer   TEXT    NOT NULL,
    topic      TEXT    NOT NULL,
    partition  INTEGER NOT NULL,
    next       INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (consumer, topic, partition)
) WITHOUT ROWID;
