package repo

// Option configures a repository.
type Option func(*options)

type options struct {
	table     string
	conflict  []string
	maxLimit  int
	maxGiven  bool
	signKeys  [][]byte
	signGiven bool
}

// Table names the entity's table, instead of its TableName method or the
// snake_case plural of its type's name. A dotted name ("app.users") is a
// table in a schema; each part is quoted.
func Table(name string) Option { return func(o *options) { o.table = name } }

// ConflictOn names the columns of the unique key that Upsert's conflict
// targets on PostgreSQL and SQLite, instead of the primary key: a row
// whose key is taken is updated in place (its primary key unchanged). On
// MySQL and MariaDB, ON DUPLICATE KEY UPDATE fires on any unique key, so
// the columns only tell Upsert how to read the row back.
func ConflictOn(columns ...string) Option {
	return func(o *options) { o.conflict = append([]string(nil), columns...) }
}

// MaxPageLimit sets the most rows a Page returns, instead of
// DefaultMaxPageLimit: a PageRequest.Limit above it is lowered to it. New
// refuses n < 1.
func MaxPageLimit(n int) Option {
	return func(o *options) { o.maxLimit, o.maxGiven = n, true }
}

// SignCursors makes the repository sign the cursors of its pages with
// HMAC-SHA256 under key, and refuse every cursor whose signature does not
// hold: an edited cursor, one made without the key or under another key,
// or one made for another query is ErrInvalidCursor. The key must be at
// least 16 bytes (32 random bytes is usual) and stay secret; New refuses a
// shorter one. Cursors signed under one of the previous keys are still
// accepted (new ones are signed under key), so that a key can be rotated
// without breaking the cursors clients hold. See Page for what a cursor
// lets a client do with and without a key.
func SignCursors(key []byte, previous ...[]byte) Option {
	return func(o *options) {
		o.signGiven = true
		o.signKeys = o.signKeys[:0]
		for _, k := range append([][]byte{key}, previous...) {
			o.signKeys = append(o.signKeys, append([]byte(nil), k...))
		}
	}
}
