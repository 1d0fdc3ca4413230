-- Stream mode: the offset of the next record each consumer applies per
-- topic partition, moved in the transaction of the records' effects.
CREATE TABLE {{.S}}{{.P}}offsets (
    consumer   text        NOT NULL,
    topic      text        NOT NULL,
    partition  integer     NOT NULL,
    next       bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, topic, partition)
);
