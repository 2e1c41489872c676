package monitor

import (
	"context"
	"errors"
	"reflect"
	"strings"

	"github.com/enginekit/enginekit/internal/dialect"
)

// Operation is what a statement does, as OpenTelemetry's
// db.operation.name names it: the SQL keyword that starts it, in capitals
// (SELECT, INSERT, UPDATE, DELETE, CREATE...; the main statement's after a
// WITH clause; SAVEPOINT, RELEASE SAVEPOINT, ROLLBACK TO SAVEPOINT), BEGIN,
// COMMIT and ROLLBACK for the transaction events, PREPARE for a prepare.
// It is "" for a statement that starts with no SQL keyword this package
// knows, so that the names are a small fixed set, fit for a metric label.
// It allocates nothing.
func Operation(op Op, query string) string {
	switch op {
	case OpBegin:
		return "BEGIN"
	case OpCommit:
		return "COMMIT"
	case OpRollback:
		return "ROLLBACK"
	case OpPrepare:
		return "PREPARE"
	}
	s := sqlScanner{q: query}
	w := s.word()
	kw := keyword(w)
	switch kw {
	case "WITH":
		// The main statement follows the common table expressions: the
		// first statement keyword outside their parentheses.
		for {
			w := s.word()
			if w == "" {
				return ""
			}
			switch k := keyword(w); k {
			case "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE":
				if s.depth == 0 {
					return k
				}
			}
		}
	case "RELEASE":
		return "RELEASE SAVEPOINT"
	case "ROLLBACK":
		if keyword(s.word()) == "TO" {
			return "ROLLBACK TO SAVEPOINT"
		}
	}
	return kw
}

// Collection is the table a statement names first, for OpenTelemetry's
// db.collection.name: the table of INSERT INTO, UPDATE, DELETE FROM,
// REPLACE INTO, or the first FROM of a SELECT; "" when there is none. It
// is as the statement writes it, schema prefix included, without the
// quotes of quoted names ("public"."users" is public.users), so that a
// repository's statements, which quote their table, and one's own name it
// alike. It allocates nothing, unless a name of several parts is quoted.
func Collection(query string) string {
	s := sqlScanner{q: query}
	switch keyword(s.word()) {
	case "INSERT", "REPLACE":
		for {
			w := s.word()
			switch keyword(w) {
			case "":
				return ""
			case "INTO":
				return s.table()
			case "IGNORE", "LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY":
			default:
				return ""
			}
		}
	case "UPDATE":
		for {
			mark := s.i
			switch keyword(s.word()) {
			case "ONLY", "IGNORE", "LOW_PRIORITY":
			default:
				s.i = mark
				return s.table()
			}
		}
	case "DELETE", "SELECT":
		for {
			w := s.word()
			if w == "" {
				return ""
			}
			if s.depth == 0 && keyword(w) == "FROM" {
				mark := s.i
				if keyword(s.word()) != "ONLY" {
					s.i = mark
				}
				return s.table()
			}
		}
	}
	return ""
}

// keywords are the statement keywords Operation names, in capitals.
var keywords = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"SELECT", "INSERT", "UPDATE", "DELETE", "REPLACE", "MERGE", "UPSERT", "WITH", "VALUES",
		"TABLE", "CALL", "EXPLAIN", "ANALYZE", "CREATE", "ALTER", "DROP", "TRUNCATE", "RENAME",
		"COMMENT", "GRANT", "REVOKE", "BEGIN", "START", "COMMIT", "ROLLBACK", "SAVEPOINT",
		"RELEASE", "SET", "RESET", "SHOW", "PRAGMA", "LOCK", "UNLOCK", "COPY", "DO", "VACUUM",
		"REINDEX", "CLUSTER", "LISTEN", "NOTIFY", "UNLISTEN", "DECLARE", "FETCH", "CLOSE", "MOVE",
		"PREPARE", "EXECUTE", "DEALLOCATE", "USE", "DESCRIBE", "LOAD", "KILL", "CHECKPOINT",
		"ATTACH", "DETACH", "REFRESH", "DISCARD", "OPTIMIZE", "FLUSH", "HANDLER",
		// words Operation and Collection look for after the first
		"TO", "INTO", "FROM", "ONLY", "IGNORE", "LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY",
	} {
		m[k] = k
	}
	return m
}()

// keyword returns w in capitals when it is one of keywords, else "".
func keyword(w string) string {
	if len(w) == 0 || len(w) > 16 {
		return ""
	}
	var b [16]byte
	for i := 0; i < len(w); i++ {
		c := w[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		b[i] = c
	}
	return keywords[string(b[:len(w)])]
}

// sqlScanner reads the words of a statement, skipping its literals,
// comments and punctuation, and counting its parentheses.
type sqlScanner struct {
	q     string
	i     int
	depth int // parentheses open at i
}

// word returns the next bare word (letters, digits, _ and $), "" at the
// end.
func (s *sqlScanner) word() string {
	for s.i < len(s.q) {
		c := s.q[s.i]
		switch {
		case wordByte(c) && !digit(c):
			start := s.i
			for s.i < len(s.q) && wordByte(s.q[s.i]) {
				s.i++
			}
			return s.q[start:s.i]
		case c == '(':
			s.depth++
			s.i++
		case c == ')':
			s.depth--
			s.i++
		case c == '\'' || c == '"' || c == '`':
			s.skipQuoted(c)
		case c == '-' && strings2(s.q, s.i, "--"), c == '#':
			for s.i < len(s.q) && s.q[s.i] != '\n' {
				s.i++
			}
		case c == '/' && strings2(s.q, s.i, "/*"):
			s.i += 2
			for s.i < len(s.q) && !strings2(s.q, s.i, "*/") {
				s.i++
			}
			s.i += 2
		case c == '$':
			s.skipDollar()
		default:
			s.i++
			if digit(c) {
				for s.i < len(s.q) && wordByte(s.q[s.i]) {
					s.i++
				}
			}
		}
	}
	return ""
}

// table returns the table name at the scanner's position: words and
// quoted names joined by dots, as written.
func (s *sqlScanner) table() string {
	for s.i < len(s.q) && (space(s.q[s.i]) || s.q[s.i] == '(') {
		if s.q[s.i] == '(' {
			return "" // a subquery
		}
		s.i++
	}
	start := s.i
	for s.i < len(s.q) {
		c := s.q[s.i]
		switch {
		case c == '"' || c == '`':
			s.skipQuoted(c)
		case wordByte(c):
			for s.i < len(s.q) && wordByte(s.q[s.i]) {
				s.i++
			}
		default:
			return unquote(s.q[start:s.i])
		}
		if s.i >= len(s.q) || s.q[s.i] != '.' {
			break
		}
		s.i++
	}
	if s.i > len(s.q) {
		s.i = len(s.q)
	}
	return unquote(s.q[start:s.i])
}

// unquote removes the quotes of the parts of a dotted name.
func unquote(name string) string {
	if !strings.ContainsAny(name, "\"`") {
		return name
	}
	if q := name[0]; len(name) >= 2 && (q == '"' || q == '`') && name[len(name)-1] == q &&
		strings.IndexByte(name[1:len(name)-1], q) < 0 {
		return name[1 : len(name)-1]
	}
	var b strings.Builder
	var quote byte
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case quote == 0 && (c == '"' || c == '`'):
			quote = c
		case c == quote:
			if i+1 < len(name) && name[i+1] == quote {
				b.WriteByte(c) // a doubled quote stands for one
				i++
			} else {
				quote = 0
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// skipQuoted skips a literal or quoted name opened by q at s.i: a doubled
// q or a backslash escapes.
func (s *sqlScanner) skipQuoted(q byte) {
	s.i++
	for s.i < len(s.q) {
		c := s.q[s.i]
		s.i++
		switch {
		case c == '\\' && q != '"':
			s.i++
		case c == q:
			if s.i < len(s.q) && s.q[s.i] == q {
				s.i++
				continue
			}
			return
		}
	}
}

// skipDollar skips a PostgreSQL dollar-quoted literal at s.i, or a $n
// placeholder.
func (s *sqlScanner) skipDollar() {
	tag, ok := dollarTag(s.q[s.i:])
	if !ok {
		s.i++
		for s.i < len(s.q) && digit(s.q[s.i]) {
			s.i++
		}
		return
	}
	s.i += len(tag)
	for s.i < len(s.q) {
		if s.q[s.i] == '$' && len(s.q)-s.i >= len(tag) && s.q[s.i:s.i+len(tag)] == tag {
			s.i += len(tag)
			return
		}
		s.i++
	}
}

func strings2(q string, i int, two string) bool { return i+1 < len(q) && q[i:i+2] == two }

func wordByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || digit(c) || c == '_' || c == '$' || c >= 0x80
}

// Error classes as ErrorType names them, after session's sentinels
// (ErrDuplicate is duplicate...), the first that an error has.
var errorTypes = []struct {
	class dialect.Class
	name  string
}{
	{dialect.Canceled, "canceled"},
	{dialect.ConnLost, "connection_lost"},
	{dialect.Locked, "locked"},
	{dialect.Retryable, "conflict"},
	{dialect.Unique, "duplicate"},
	{dialect.ForeignKey, "foreign_key"},
	{dialect.NotNull, "not_null"},
	{dialect.Check, "check"},
	{dialect.ReadOnly, "read_only"},
	{dialect.Stale, "stale_statement"},
}

// ErrorType names the class of a failure, for OpenTelemetry's error.type
// (and the Prometheus monitor's error_type): "" for nil; enginekit's
// class of a database error when it has one, named after session's
// sentinel (duplicate, foreign_key, not_null, check, conflict for a
// serialization failure, a deadlock or SQLite's busy, locked,
// connection_lost, read_only, canceled), or stale_statement; canceled or
// deadline_exceeded for a ctx that ended; else the SQLSTATE of a
// PostgreSQL error; else the Go type of the innermost error that has one
// of its own (*mysql.MySQLError); else "_OTHER".
func ErrorType(err error) string {
	if err == nil {
		return ""
	}
	c := dialect.ClassOf(err)
	for _, t := range errorTypes {
		if c.Has(t.class) {
			return t.name
		}
	}
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded"
	}
	var st interface{ SQLState() string }
	if errors.As(err, &st) {
		if code := st.SQLState(); code != "" {
			return code
		}
	}
	name := "_OTHER"
	for e := err; e != nil; e = errors.Unwrap(e) {
		switch e.(type) {
		case *dialect.Error, *dialect.Refused:
			continue
		}
		switch t := reflect.TypeOf(e).String(); t {
		case "*errors.errorString", "*fmt.wrapError", "*fmt.wrapErrors":
		default:
			name = t
		}
	}
	return name
}
