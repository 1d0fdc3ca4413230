DROP TABLE {{.S}}{{.P}}dedupe;
