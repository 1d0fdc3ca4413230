DROP TABLE IF EXISTS {{.P}}outbox;
DROP TABLE IF EXISTS {{.P}}dead_letters;
DROP TABLE IF EXISTS {{.P}}inbox_quarantine;
DROP TABLE IF EXISTS {{.P}}inbox_failures;
DROP TABLE IF EXISTS {{.P}}inbox;
