DROP TABLE {{.S}}{{.P}}offsets;
