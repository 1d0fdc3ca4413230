DROP TABLE {{.P}}dedupe;
