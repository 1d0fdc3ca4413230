DROP TABLE IF EXISTS {{.S}}{{.P}}outbox;
DROP TABLE IF EXISTS {{.S}}{{.P}}dead_letters;
DROP TABLE IF EXISTS {{.S}}{{.P}}inbox_quarantine;
DROP TABLE IF EXISTS {{.S}}{{.P}}inbox_failures;
DROP TABLE IF EXISTS {{.S}}{{.P}}inbox;
