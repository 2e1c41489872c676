package repo

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql/driver"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"time"
	"unsafe"
)

// PageRequest asks for one page of a keyset pagination. Both fields may
// come straight from a client: see Page.
type PageRequest struct {
	Limit int    // rows per page: at most the repository's maximum; DefaultPageLimit when <= 0
	After string // the Next cursor of the previous page; "" for the first page
}

// Page is one page of rows and the cursor of the next one.
type Page[T any] struct {
	Items []T
	Next  string // "" on the last page
}

const (
	// DefaultPageLimit is the page size of a PageRequest whose Limit is
	// zero or less (the repository's maximum, when that is lower).
	DefaultPageLimit = 50
	// DefaultMaxPageLimit is the most rows a Page returns, unless the
	// repository was made with MaxPageLimit.
	DefaultMaxPageLimit = 1000
)

// Cursors: the bytes under base64 are
//
//	cursorVersion | tag (32 bytes) | payload (a JSON array: the last row's ordering values)
//
// where tag is HMAC-SHA256(key, cursorVersion | digest of the query |
// payload), with the repository's SignCursors key, or an empty key when
// cursors are not signed.
const (
	cursorVersion = 1
	cursorTagLen  = sha256.Size
	// maxCursorLen bounds a cursor's length in characters, both the ones
	// Page makes and the ones it reads (checked before any decoding).
	maxCursorLen = 4096
	// minSignKeyLen is the shortest key SignCursors takes.
	minSignKeyLen = 16
)

// pageOptions reads the options of Page.
func (r *Repository[T, ID]) pageOptions(o *options) error {
	r.maxLimit = DefaultMaxPageLimit
	if o.maxGiven {
		if o.maxLimit < 1 {
			return fmt.Errorf("repo: MaxPageLimit(%d): the maximum must be at least 1", o.maxLimit)
		}
		r.maxLimit = min(o.maxLimit, math.MaxInt-1) // Page asks for one row more
	}
	r.pageLimit = min(DefaultPageLimit, r.maxLimit)
	if o.signGiven {
		for i, k := range o.signKeys {
			if len(k) < minSignKeyLen {
				return fmt.Errorf("repo: SignCursors: key %d is %d bytes long, a key needs at least %d", i, len(k), minSignKeyLen)
			}
		}
		r.signKeys = o.signKeys
	}
	return nil
}

// pageSize is the number of rows a page asked for with limit holds at
// most.
func (r *Repository[T, ID]) pageSize(limit int) int {
	switch {
	case limit <= 0:
		return r.pageLimit
	case limit > r.maxLimit:
		return r.maxLimit
	}
	return limit
}

// Page returns the rows the clauses select that come after the cursor
// p.After, at most p.Limit of them, ordered by the OrderBy clauses and then
// by the primary key (by the primary key alone without OrderBy).
//
// p.Limit may be any int, such as a page size read from a query string:
// above the repository's maximum (DefaultMaxPageLimit, or the one set by
// MaxPageLimit) it is lowered to the maximum, and zero or less means
// DefaultPageLimit (or the maximum, when that is lower).
//
// It pages by key, not by offset: each page continues from the ordering
// values of the last row of the previous one, which the opaque Next
// cursor carries. A row inserted or deleted elsewhere neither shifts nor
// repeats the rows of later pages, and every page costs the same.
//
// A cursor is bound to its whole query: the table, the conditions with
// their values, and the ordering. With any other query (another value in
// a condition, another condition, another ordering or direction, another
// table, another set of the entity's columns after a deploy) it is
// ErrInvalidCursor, as is a cursor truncated or edited; the page size may
// change from page to page. A cursor is URL-safe (base64url)
// and at most 4096 characters long, but not secret: it carries the
// ordering values of the last row of its page in clear, so ordering by a
// column that clients must not see shows it to them.
//
// Without SignCursors, the binding is a checksum, which anyone who reads
// this package's source can compute: it catches cursors used with another
// query and edited ones, but a determined client can make a cursor of its
// own and so choose where a page starts. That is all it can do: the
// conditions are in the SQL the repository builds from the clauses, not in
// the cursor, so no page ever holds a row the clauses do not select, and a
// cursor's values are bound parameters, decoded into the ordering
// columns' Go types. With SignCursors, the check is an HMAC-SHA256 under
// the repository's secret key: only the repository can make a cursor, and
// one edited or made anywhere else is refused.
//
// Ordering columns must not be NULL in the rows paged through (databases
// disagree on where NULLs sort), and their values must fit in a cursor
// (about 3 KB of JSON): a Next cursor that would not is an error. Limit
// and Offset clauses are refused: the page request says both.
func (r *Repository[T, ID]) Page(ctx context.Context, p PageRequest, q ...Clause) (Page[T], error) {
	var page Page[T]
	for _, c := range q {
		if c.kind == clauseLimit || c.kind == clauseOffset {
			return page, fmt.Errorf("%w: Page takes its limit from the PageRequest and has no offset", ErrInvalidClause)
		}
	}
	limit := r.pageSize(p.Limit)
	b := &query{sqlText: sqlText{d: r.d}}
	b.str(r.sql.selectAll)
	sh, err := r.where(b, q)
	if err == nil {
		err = r.checkLock(ctx, sh)
	}
	if err != nil {
		return page, err
	}
	order := r.orderBy(sh.order)
	// The query a cursor is bound to: the statement so far (columns,
	// table, conditions) with its values, and the ordering.
	text, args := b.b[:len(b.b):len(b.b)], b.args[:len(b.args):len(b.args)]
	var digest []byte
	if p.After != "" {
		digest = r.queryDigest(text, args, order)
		key, err := r.decodeCursor(p.After, order, digest)
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
	r.writeLock(b, sh.lock)
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
		if digest == nil {
			digest = r.queryDigest(text, args, order)
		}
		if page.Next, err = r.encodeCursor(addr(&items[limit-1]), order, digest); err != nil {
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

// queryDigest identifies a query: the SHA-256 of its SQL text up to the
// ordering, its values as the driver would receive them, and its
// ordering (column names and directions).
func (r *Repository[T, ID]) queryDigest(text []byte, args []any, order []orderTerm) []byte {
	buf := make([]byte, 0, 64+len(text)+16*len(args)+16*len(order))
	buf = append(buf, "enginekit/repo page query\x00"...)
	buf = appendBytes(buf, text)
	buf = binary.AppendUvarint(buf, uint64(len(order)))
	for _, o := range order {
		buf = appendBytes(buf, []byte(r.e.cols[o.col].name))
		buf = append(buf, boolByte(o.desc))
	}
	buf = binary.AppendUvarint(buf, uint64(len(args)))
	for _, a := range args {
		buf = appendArg(buf, a)
	}
	sum := sha256.Sum256(buf)
	return sum[:]
}

// appendArg appends an unambiguous form of a bound value: the
// driver.Value database/sql would pass on (a Valuer's Value, a pointer's
// target, an int8's int64...), tagged with its type; a value only the
// driver knows how to convert, by its Go type and printed form.
func appendArg(buf []byte, v any) []byte {
	dv, err := driver.DefaultParameterConverter.ConvertValue(v)
	if err != nil {
		rv := reflect.ValueOf(v)
		for rv.Kind() == reflect.Pointer && !rv.IsNil() {
			rv = rv.Elem()
		}
		return appendBytes(append(buf, 'x'), fmt.Appendf(nil, "%s\x00%v", rv.Type(), rv))
	}
	switch x := dv.(type) {
	case nil:
		return append(buf, 'n')
	case int64:
		return binary.BigEndian.AppendUint64(append(buf, 'i'), uint64(x))
	case float64:
		return binary.BigEndian.AppendUint64(append(buf, 'f'), math.Float64bits(x))
	case bool:
		return append(buf, 'b', boolByte(x))
	case []byte:
		return appendBytes(append(buf, 'y'), x)
	case string:
		return appendBytes(append(buf, 's'), []byte(x))
	case time.Time:
		return appendBytes(append(buf, 't'), x.AppendFormat(nil, time.RFC3339Nano))
	}
	return appendBytes(append(buf, 'x'), fmt.Appendf(nil, "%T\x00%v", dv, dv))
}

func appendBytes(buf, b []byte) []byte {
	return append(binary.AppendUvarint(buf, uint64(len(b))), b...)
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// cursorTag computes the tag of a cursor's payload under key (nil: not
// signed).
func cursorTag(key, digest, payload []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte{cursorVersion})
	mac.Write(digest)
	mac.Write(payload)
	return mac.Sum(make([]byte, 0, cursorTagLen))
}

// signKey is the key new cursors are tagged with; nil when unsigned.
func (r *Repository[T, ID]) signKey() []byte {
	if len(r.signKeys) == 0 {
		return nil
	}
	return r.signKeys[0]
}

// encodeCursor makes the cursor that continues after the row at p.
func (r *Repository[T, ID]) encodeCursor(p unsafe.Pointer, order []orderTerm, digest []byte) (string, error) {
	key := make([]json.RawMessage, len(order))
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
		key[i] = raw
	}
	payload, err := json.Marshal(key)
	if err != nil {
		return "", fmt.Errorf("repo: page through %s: cursor: %w", r.e.table, err)
	}
	body := make([]byte, 0, 1+cursorTagLen+len(payload))
	body = append(body, cursorVersion)
	body = append(body, cursorTag(r.signKey(), digest, payload)...)
	body = append(body, payload...)
	if n := base64.RawURLEncoding.EncodedLen(len(body)); n > maxCursorLen {
		return "", fmt.Errorf("repo: page through %s: the next cursor would be %d characters long, more than %d: the ordering columns' values are too long for a cursor",
			r.e.table, n, maxCursorLen)
	}
	return base64.RawURLEncoding.EncodeToString(body), nil
}

// cursorEncoding is base64url without padding, refusing non-zero padding
// bits, so that a cursor has one spelling only.
var cursorEncoding = base64.RawURLEncoding.Strict()

// decodeCursor checks a cursor against the query (its digest) and returns
// its key values, each decoded into its column's Go type. Nothing of the
// cursor is decoded before its tag holds but the base64.
func (r *Repository[T, ID]) decodeCursor(s string, order []orderTerm, digest []byte) ([]any, error) {
	if len(s) > maxCursorLen {
		return nil, fmt.Errorf("%w: longer than %d characters", ErrInvalidCursor, maxCursorLen)
	}
	for i := 0; i < len(s); i++ { // the decoder skips CR and LF
		if c := s[i]; !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return nil, fmt.Errorf("%w: not base64url", ErrInvalidCursor)
		}
	}
	raw, err := cursorEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64url", ErrInvalidCursor)
	}
	if len(raw) < 1+cursorTagLen || raw[0] != cursorVersion {
		return nil, fmt.Errorf("%w: malformed", ErrInvalidCursor)
	}
	tag, payload := raw[1:1+cursorTagLen], raw[1+cursorTagLen:]
	ok := false
	if len(r.signKeys) == 0 {
		ok = hmac.Equal(tag, cursorTag(nil, digest, payload))
	}
	for _, k := range r.signKeys {
		ok = ok || hmac.Equal(tag, cursorTag(k, digest, payload))
	}
	if !ok {
		if len(r.signKeys) > 0 {
			return nil, fmt.Errorf("%w: not signed by this repository for this query of %s (another query, edited, or another key)", ErrInvalidCursor, r.e.table)
		}
		return nil, fmt.Errorf("%w: made for another query of %s, or edited", ErrInvalidCursor, r.e.table)
	}
	var vals []json.RawMessage
	if err := json.Unmarshal(payload, &vals); err != nil {
		return nil, fmt.Errorf("%w: malformed", ErrInvalidCursor)
	}
	if len(vals) != len(order) {
		return nil, fmt.Errorf("%w: %d values for an ordering of %d columns", ErrInvalidCursor, len(vals), len(order))
	}
	key := make([]any, len(order))
	for i, o := range order {
		col := &r.e.cols[o.col]
		if string(bytes.TrimSpace(vals[i])) == "null" { // json.Unmarshal would leave the zero value
			return nil, fmt.Errorf("%w: value of %q is null", ErrInvalidCursor, col.name)
		}
		v := reflect.New(col.typ)
		if err := json.Unmarshal(vals[i], v.Interface()); err != nil {
			return nil, fmt.Errorf("%w: value of %q: %v", ErrInvalidCursor, col.name, err)
		}
		key[i] = col.val(v.UnsafePointer())
	}
	return key, nil
}
