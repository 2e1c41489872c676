package repo

import "encoding/base64"

// IsWhere, LimitOf and OffsetOf let the tests read clauses.
func IsWhere(c Clause) bool { return c.kind == clauseWhere }

func LimitOf(c Clause) (int, bool) { return c.n, c.kind == clauseLimit }

func OffsetOf(c Clause) (int, bool) { return c.n, c.kind == clauseOffset }

// BuildFind returns the SELECT that Find would run.
func (r *Repository[T, ID]) BuildFind(q ...Clause) (string, []any, error) {
	b, _, err := r.buildFind(q, -1)
	if err != nil {
		return "", nil, err
	}
	return b.String(), b.args, nil
}

// BuildCount returns the SELECT that Count would run.
func (r *Repository[T, ID]) BuildCount(q ...Clause) (string, []any, error) {
	b, err := r.buildCount(q)
	if err != nil {
		return "", nil, err
	}
	return b.String(), b.args, nil
}

// ForgeCursor makes a cursor for the query of q whose payload (the JSON
// array of ordering values) is given, tagged under key (nil: unsigned),
// as a client who knows the format could.
func (r *Repository[T, ID]) ForgeCursor(key []byte, payload string, q ...Clause) (string, error) {
	b := &query{sqlText: sqlText{d: r.d}}
	b.str(r.sql.selectAll)
	sh, err := r.where(b, q)
	if err != nil {
		return "", err
	}
	digest := r.queryDigest(b.b, b.args, r.orderBy(sh.order))
	body := append([]byte{cursorVersion}, cursorTag(key, digest, []byte(payload))...)
	return base64.RawURLEncoding.EncodeToString(append(body, payload...)), nil
}

// MaxCursorLen is the longest cursor Page makes or reads.
const MaxCursorLen = maxCursorLen
