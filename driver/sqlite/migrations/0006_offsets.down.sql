DROP TABLE {{.P}}offsets;
