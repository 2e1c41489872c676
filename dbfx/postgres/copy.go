package postgres

import (
	"context"
	"database/sql/driver"
	"fmt"
	"strings"

	"github.com/lib/pq"
)

// copyFrom loads rows with COPY FROM STDIN on lib/pq's connection conn,
// which is in a transaction (lib/pq allows COPY only there): the rows
// stream in 64 KiB messages, and the server's verdict comes at the end.
// A ctx that ends stops the load between rows; the transaction, aborted,
// then rolls back.
func copyFrom(ctx context.Context, conn any, table string, columns []string, n int, row func(int, []any)) (int64, error) {
	pc, ok := conn.(driver.Conn)
	if !ok {
		return 0, fmt.Errorf("postgres: COPY needs lib/pq's connection, got a %T", conn)
	}
	st, err := pc.Prepare(copySQL(table, columns))
	if err != nil {
		return 0, err
	}
	defer st.Close()
	vals := make([]any, len(columns))
	dvals := make([]driver.Value, len(columns))
	for i := range n {
		if i&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		row(i, vals)
		for j, v := range vals {
			if dvals[j], err = driver.DefaultParameterConverter.ConvertValue(v); err != nil {
				return 0, fmt.Errorf("postgres: COPY %s, row %d, column %s: %w", table, i, columns[j], err)
			}
		}
		if _, err := st.Exec(dvals); err != nil { //nolint:staticcheck // lib/pq's COPY statement has Exec alone
			return 0, err
		}
	}
	res, err := st.Exec(nil) //nolint:staticcheck // as above: Exec(nil) ends the stream and returns the server's verdict
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// copySQL is COPY table (columns) FROM STDIN, with quoted identifiers
// (a table named schema.name is quoted part by part).
func copySQL(table string, columns []string) string {
	var b strings.Builder
	b.WriteString("COPY ")
	for i, part := range strings.Split(table, ".") {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(pq.QuoteIdentifier(part))
	}
	b.WriteString(" (")
	for i, c := range columns {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(pq.QuoteIdentifier(c))
	}
	b.WriteString(") FROM STDIN")
	return b.String()
}
