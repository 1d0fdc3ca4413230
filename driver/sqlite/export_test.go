package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"sync/atomic"

	msqlite "modernc.org/sqlite"
)

// OpenCounting is Open over connections that count the statements they
// run (each Exec or Query, prepared or not), for tests of how many
// statements a call takes.
func OpenCounting(ctx context.Context, path string, cfg Config) (*Driver, func() int64, error) {
	var n atomic.Int64
	d, err := open(ctx, path, cfg, func(dsn string) (*sql.DB, error) {
		return sql.OpenDB(countingConnector{dsn: dsn, n: &n}), nil
	})
	return d, n.Load, err
}

type countingConnector struct {
	dsn string
	n   *atomic.Int64
}

func (c countingConnector) Connect(context.Context) (driver.Conn, error) {
	dc, err := c.Driver().Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return &countingConn{dc.(innerConn), c.n}, nil
}

func (c countingConnector) Driver() driver.Driver { return &msqlite.Driver{} }

// innerConn is what modernc's connection implements and database/sql uses.
type innerConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.SessionResetter
	driver.Validator
}

type countingConn struct {
	innerConn
	n *atomic.Int64
}

func (c *countingConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	c.n.Add(1)
	return c.innerConn.ExecContext(ctx, q, args)
}

func (c *countingConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	c.n.Add(1)
	return c.innerConn.QueryContext(ctx, q, args)
}

func (c *countingConn) Prepare(q string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), q)
}

func (c *countingConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	st, err := c.innerConn.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	return &countingStmt{st.(innerStmt), c.n}, nil
}

type innerStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

type countingStmt struct {
	innerStmt
	n *atomic.Int64
}

func (s *countingStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	s.n.Add(1)
	return s.innerStmt.ExecContext(ctx, args)
}

func (s *countingStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	s.n.Add(1)
	return s.innerStmt.QueryContext(ctx, args)
}
