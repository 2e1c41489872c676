package pgx

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// copyFrom loads rows with pgx's CopyFrom (COPY FROM STDIN in PostgreSQL's
// binary format) on the pgx connection under conn; a table named
// schema.name is quoted part by part.
func copyFrom(ctx context.Context, conn any, table string, columns []string, n int, row func(int, []any)) (int64, error) {
	sc, ok := conn.(*stdlib.Conn)
	if !ok {
		return 0, fmt.Errorf("pgx: COPY needs pgx's connection, got a %T", conn)
	}
	src := &rowSource{n: n, row: row, vals: make([]any, len(columns)), i: -1}
	return sc.Conn().CopyFrom(ctx, pgx.Identifier(strings.Split(table, ".")), columns, src)
}

// rowSource is the pgx.CopyFromSource of row.
type rowSource struct {
	n, i int
	row  func(int, []any)
	vals []any
}

func (s *rowSource) Next() bool {
	s.i++
	return s.i < s.n
}

func (s *rowSource) Values() ([]any, error) {
	s.row(s.i, s.vals)
	return s.vals, nil
}

func (s *rowSource) Err() error { return nil }
