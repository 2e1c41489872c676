package session

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/enginekit/enginekit/internal/connwrap"
	"github.com/enginekit/enginekit/internal/drv"
	"github.com/enginekit/enginekit/monitor"
)

// CopyFrom loads n rows into table's columns by the driver's bulk path,
// PostgreSQL's COPY FROM STDIN (dbfx/postgres and dbfx/pgx), in the
// transaction of ctx's scope, or outside any in a transaction of its own:
// every row or none. row fills dst, one value per column, with the values
// of row i; it may be called again for a row when the transaction is
// retried. table and columns are names as they are (quoted by the driver),
// never input from a request. It returns the number of rows loaded.
//
// A driver without a bulk path (MySQL, MariaDB, SQLite) returns
// errors.ErrUnsupported at once: multi-row INSERTs are their fastest form
// (repo.Load chooses for its caller). The load is one statement to the
// monitor, not one per row.
func (m *Manager) CopyFrom(ctx context.Context, table string, columns []string, n int, row func(i int, dst []any)) (int64, error) {
	cp := m.copyFrom()
	if cp == nil {
		return 0, errors.ErrUnsupported
	}
	if n == 0 {
		return 0, nil
	}
	var loaded int64
	err := m.Tx(ctx, func(ctx context.Context) error {
		s := m.current(ctx)
		if _, err := s.target(); err != nil { // ended, or aborted by an earlier error
			return err
		}
		text := "COPY " + table + " (" + strings.Join(columns, ", ") + ") FROM STDIN"
		sctx := ctx
		if qt, ok := m.cfg.mon.(monitor.QueryTracer); ok {
			sctx = qt.QueryStart(ctx, monitor.QueryStart{DB: m.cfg.db, Op: monitor.OpExec, SQL: text})
		}
		begun := time.Now()
		err := s.conn.Raw(func(dc any) error {
			var err error
			loaded, err = cp(ctx, connwrap.Unwrap(dc), table, columns, n, row)
			return err
		})
		if err != nil {
			err = s.m.d.Tag(err)
			loaded = 0
		}
		if m.cfg.mon != nil {
			m.cfg.mon.Query(sctx, monitor.QueryEvent{DB: m.cfg.db, Op: monitor.OpExec, SQL: text,
				Duration: time.Since(begun), Rows: loaded, Err: err})
		}
		if err != nil {
			return s.observe(err)
		}
		return nil
	}, Label("session.CopyFrom"))
	if err != nil {
		return 0, err
	}
	return loaded, nil
}

// copyFrom is the driver's bulk path, or nil.
func (m *Manager) copyFrom() func(context.Context, any, string, []string, int, func(int, []any)) (int64, error) {
	if d, ok := m.cfg.driver.(interface{ Spec() *drv.Driver }); ok && d.Spec() != nil {
		return d.Spec().CopyFrom
	}
	return nil
}
