package repo

// Option configures a repository.
type Option func(*options)

type options struct {
	table    string
	conflict []string
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
