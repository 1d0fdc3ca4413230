package reconcile_test

import (
	"database/sql"

	"github.com/jackc/pgx/v5"

	"github.com/eoskit/eos/driver/sqlite"
	"github.com/eoskit/eos/internal/testdb"
)

type pgxTx = pgx.Tx

func sqliteDB(e *testdb.Engine[*sql.Tx]) *sql.DB { return e.Driver.(*sqlite.Driver).DB() }
