package repo

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
