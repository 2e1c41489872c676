package repo

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"reflect"
	"unsafe"
)

// PageRequest asks for one page of a keyset pagination.
type PageRequest struct {
	Limit int    // rows per page; DefaultPageLimit when <= 0
	After string // the Next cursor of the previous page; "" for the first page
}

// Page is one page of rows and the cursor of the next one.
type Page[T any] struct {
	Items []T
	Next  string // "" on the last page
}

// DefaultPageLimit is the page size of a PageRequest without a Limit.
const DefaultPageLimit = 50

// Page returns the rows the clauses select that come after the cursor
// p.After, at most p.Limit of them, ordered by the OrderBy clauses and then
// by the primary key (by the primary key alone without OrderBy).
//
// It pages by key, not by offset: each page continues from the ordering
// values of the last row of the previous one, which the opaque Next
// cursor carries. A row inserted or deleted elsewhere neither shifts nor
// repeats the rows of later pages, and every page costs the same. The
// cursor is bound to the ordering: one made for another ordering, or
// altered, fails with ErrInvalidCursor. Ordering columns must not be NULL
// in the rows paged through (databases disagree on where NULLs sort).
// Limit and Offset clauses are refused: the page request says both.
func (r *Repository[T, ID]) Page(ctx context.Context, p PageRequest, q ...Clause) (Page[T], error) {
	var page Page[T]
	for _, c := range q {
		if c.kind == clauseLimit || c.kind == clauseOffset {
			return page, fmt.Errorf("%w: Page takes its limit from the PageRequest and has no offset", ErrInvalidClause)
		}
	}
	limit := p.Limit
	if limit <= 0 {
		limit = DefaultPageLimit
	}
	b := &query{sqlText: sqlText{d: r.d}}
	b.str(r.sql.selectAll)
	sh, err := r.where(b, q)
	if err != nil {
		return page, err
	}
	order := r.orderBy(sh.order)
	fp := r.fingerprint(order)
	if p.After != "" {
		key, err := r.decodeCursor(p.After, order, fp)
		if err != nil {
			return page, err
		}
		if sh.where {
			b.str(" AND ")
		} else {
			b.str(" WHERE ")
		}
		r.keyset(b, order, key)
		if len(b.args) > r.d.MaxPlaceholders() {
			return page, fmt.Errorf("%w: too many values for one statement", ErrInvalidClause)
		}
	}
	r.writeOrder(b, order)
	r.writeLimit(b, limit+1, -1) // one more row tells whether a next page exists
	rows, err := r.querier(ctx, !b.varies).QueryContext(ctx, b.String(), b.args...)
	if err != nil {
		return page, r.readErr("page through", err)
	}
	items, err := r.scanAll(rows, min(limit+1, 1024))
	if err != nil {
		return page, r.readErr("page through", err)
	}
	if len(items) > limit {
		items = items[:limit]
		if page.Next, err = r.encodeCursor(addr(&items[limit-1]), order, fp); err != nil {
			return page, err
		}
	}
	page.Items = items
	return page, nil
}

// keyset appends the condition "after key in this ordering":
// (c1 > v1) OR (c1 = v1 AND c2 > v2) OR ..., with < for a descending
// column. The expanded form works for mixed directions on every database.
func (r *Repository[T, ID]) keyset(b *query, order []orderTerm, key []any) {
	b.str("(")
	for i := range order {
		if i > 0 {
			b.str(" OR ")
		}
		b.str("(")
		for j := range i {
			b.str(r.sql.cols[order[j].col] + " = ")
			b.bind(key[j])
			b.str(" AND ")
		}
		b.str(r.sql.cols[order[i].col])
		if order[i].desc {
			b.str(" < ")
		} else {
			b.str(" > ")
		}
		b.bind(key[i])
		b.str(")")
	}
	b.str(")")
}

// cursor is what a Next cursor holds, before base64.
type cursor struct {
	Order uint32            `json:"o"` // fingerprint of the ordering
	Key   []json.RawMessage `json:"k"` // the last row's ordering values
}

// fingerprint identifies an ordering (columns and directions) of this
// table, so that a cursor is only accepted by the ordering that made it.
func (r *Repository[T, ID]) fingerprint(order []orderTerm) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(r.e.table))
	for _, o := range order {
		_, _ = fmt.Fprintf(h, "\x00%s/%t", r.e.cols[o.col].name, o.desc)
	}
	return h.Sum32()
}

func (r *Repository[T, ID]) encodeCursor(p unsafe.Pointer, order []orderTerm, fp uint32) (string, error) {
	c := cursor{Order: fp, Key: make([]json.RawMessage, len(order))}
	for i, o := range order {
		col := &r.e.cols[o.col]
		v := reflect.NewAt(col.typ, unsafe.Add(p, col.offset)).Elem()
		if (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) && v.IsNil() {
			return "", fmt.Errorf("repo: page through %s: column %q is NULL in the last row of the page: keyset pages need non-NULL ordering columns",
				r.e.table, col.name)
		}
		raw, err := json.Marshal(v.Interface())
		if err != nil {
			return "", fmt.Errorf("repo: page through %s: cursor value of %q: %w", r.e.table, col.name, err)
		}
		c.Key[i] = raw
	}
	raw, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(raw), nil
}

// decodeCursor checks a cursor against the ordering and returns its key
// values, each decoded into its column's Go type.
func (r *Repository[T, ID]) decodeCursor(s string, order []orderTerm, fp uint32) ([]any, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64", ErrInvalidCursor)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var c cursor
	if err := dec.Decode(&c); err != nil || dec.More() {
		return nil, fmt.Errorf("%w: malformed", ErrInvalidCursor)
	}
	if c.Order != fp || len(c.Key) != len(order) {
		return nil, fmt.Errorf("%w: made for another ordering of %s", ErrInvalidCursor, r.e.table)
	}
	key := make([]any, len(order))
	for i, o := range order {
		col := &r.e.cols[o.col]
		if bytes.Equal(c.Key[i], []byte("null")) { // json.Unmarshal would leave the zero value
			return nil, fmt.Errorf("%w: value of %q is null", ErrInvalidCursor, col.name)
		}
		v := reflect.New(col.typ)
		if err := json.Unmarshal(c.Key[i], v.Interface()); err != nil {
			return nil, fmt.Errorf("%w: value of %q: %v", ErrInvalidCursor, col.name, err)
		}
		key[i] = col.val(v.UnsafePointer())
	}
	return key, nil
}
