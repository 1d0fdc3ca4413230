package postgres

import (
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eoskit/eos"
)

// checkEncoding reports a *eos.ConfigError when text sent on conn would not
// be stored as the UTF-8 eos sends. A client_encoding other than UTF8 (a
// role's or database's setting, a handler's SET, the default of a database
// in another encoding) makes the server read eos's UTF-8 bytes as another
// encoding: some valid messages then fail every statement (the consumer
// stalls on them) and the others are stored as different text. A database
// in an encoding other than UTF8 cannot hold every character. SQL_ASCII, on
// either side, means bytes pass unconverted, which is what eos needs. Both
// are read from what the server reports on the connection: the check costs
// no round trip.
func checkEncoding(conn *pgconn.PgConn) error {
	if ce := conn.ParameterStatus("client_encoding"); ce != "" && ce != "UTF8" && ce != "SQL_ASCII" {
		return &eos.ConfigError{Field: "postgres client_encoding", Reason: fmt.Sprintf(
			"%q: eos sends UTF-8 text; set client_encoding to UTF8 (connection string, role or database setting)", ce)}
	}
	if se := conn.ParameterStatus("server_encoding"); se != "" && se != "UTF8" && se != "SQL_ASCII" {
		return &eos.ConfigError{Field: "postgres server_encoding", Reason: fmt.Sprintf(
			"the database's encoding %q cannot hold every character eos stores; use a UTF8 database", se)}
	}
	return nil
}
