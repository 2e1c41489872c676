package monitor

import "strings"

// NormalizeSQL returns query with its literals replaced by ?, for a log
// line or a span that must not carry the values written into the SQL (a
// password in CREATE USER ... PASSWORD '...', a token in a WHERE): string
// literals ('...' with doubled quotes, and backslash escapes where the
// database reads them; PostgreSQL's E'...' and dollar-quoted $$...$$ and
// $tag$...$tag$ bodies; MySQL's "..." strings), numbers, and a
// single-letter prefix of a string (E'...', X'...', N'...'). Comments (--,
// /* */, MySQL's #) are removed; MySQL's executable /*! ... */ comments are
// read as SQL. Identifiers, quoted or not, keywords, operators and bind
// placeholders ($1, ?, ?1, :name) are kept:
//
//	SELECT * FROM "users" WHERE email = 'a@b.c' AND id > 10 -- x
//	SELECT * FROM "users" WHERE email = ? AND id > ?
//
// sys says how the database reads the SQL. Where two readings are
// possible, every one is taken and what any of them reads as a literal is
// hidden: PostgreSQL with and without standard_conforming_strings (a
// backslash escaping a quote or not), MySQL with and without
// NO_BACKSLASH_ESCAPES. With sys "" (unknown) the readings of all three
// databases are taken: MySQL's make a double-quoted name a literal (hidden)
// and '#' the start of a comment. Read as SQLite, a double-quoted word is
// a name and is shown, though SQLite takes one that names no column for a
// string: write strings in single quotes.
//
// It reads query once, left to right, and allocates one string, only when
// something is replaced. It never panics, on any input: an unterminated
// literal or comment hides the rest of the statement.
func NormalizeSQL(query string, sys System) string {
	return normalize(query, sys, 0)
}

// readings fills ls with a lexer of q per reading of sys's SQL (every
// database's for a system it does not know) and returns them.
func readings(ls *[5]lexer, sys System, q string) []lexer {
	all := sys != PostgreSQL && sys != MySQL && sys != SQLite
	n := 0
	add := func(r rules) {
		ls[n] = lexer{rules: r, q: q}
		n++
	}
	if all || sys == PostgreSQL {
		add(rules{dollar: true, nested: true, eString: true})   // standard_conforming_strings on
		add(rules{dollar: true, nested: true, backslash: true}) // standard_conforming_strings off
	}
	if all || sys == MySQL {
		add(rules{backslash: true, dqString: true, mysql: true}) // MySQL, MariaDB
		add(rules{dqString: true, mysql: true})                  // NO_BACKSLASH_ESCAPES
	}
	if all || sys == SQLite {
		add(rules{brackets: true})
	}
	return ls[:n]
}

// normalize is NormalizeSQL that may stop once it has more than limit
// bytes to return (0: no limit): a log line cuts it there.
func normalize(query string, sys System, limit int) string {
	var ls [5]lexer
	lexers := readings(&ls, sys, query)

	var b strings.Builder // begun at the first byte hidden
	begun := false
	prev := shown         // what the previous byte was
	pendingSpace := false // a comment was removed before the next byte written
	var prefix byte       // a letter held back: it may prefix a string (E'...')
	for i := 0; i < len(query); i++ {
		if limit > 0 && i > limit && (!begun || b.Len() > limit) {
			if !begun {
				return query[:i]
			}
			break
		}
		h := shown
		for j := range lexers {
			h = max(h, lexers[j].next(i))
		}
		if !begun {
			if h == shown {
				continue
			}
			begun = true
			b.Grow(len(query))
			if h == literal && query[i] == '\'' && prefixAt(query, i-1) {
				b.WriteString(query[:i-1])
			} else {
				b.WriteString(query[:i])
			}
		} else if prefix != 0 {
			if h != literal {
				b.WriteByte(prefix) // no string after it: write it
			}
			prefix = 0
		}
		c := query[i]
		switch {
		case h == comment:
			pendingSpace = true
		case h == literal && prev == literal:
		default:
			if pendingSpace && b.Len() > 0 && !space(c) && !space(lastByte(&b)) {
				b.WriteByte(' ')
			}
			pendingSpace = false
			switch {
			case h == literal:
				b.WriteByte('?')
			case query[i+1:] != "" && query[i+1] == '\'' && prefixAt(query, i):
				prefix = c
			default:
				b.WriteByte(c)
			}
		}
		prev = h
	}
	if !begun {
		return query
	}
	if prefix != 0 {
		b.WriteByte(prefix)
	}
	if pendingSpace { // a comment ended the statement: so do its spaces
		return strings.TrimRight(b.String(), " \t\r\n\f\v")
	}
	return b.String()
}

// literalValues returns the values of the string literals of query, as
// sys reads it, that are at least minLen bytes long: their text between
// the quotes (a doubled quote made one), or a dollar quote's body. A
// driver's error may quote one ("invalid input syntax for type integer:
// \"...\""), and a log line scrubs them from it.
func literalValues(query string, sys System, minLen int) []string {
	var ls [5]lexer
	lexers := readings(&ls, sys, query)
	var out []string
	start := -1
	for i := 0; i <= len(query); i++ {
		h := shown
		if i < len(query) {
			for j := range lexers {
				h = max(h, lexers[j].next(i))
			}
		}
		switch {
		case h == literal && start < 0:
			start = i
		case h != literal && start >= 0:
			if lit := query[start:i]; !digit(lit[0]) && lit[0] != '.' { // strings, not numbers
				if v := literalValue(lit); len(v) >= minLen {
					out = append(out, v)
				}
			}
			start = -1
		}
	}
	return out
}

// literalValue is the value of the literal lit: its text between quotes or
// dollar tags, a doubled quote made one.
func literalValue(lit string) string {
	if strings.HasPrefix(lit, "$") {
		if tag, ok := dollarTag(lit); ok && len(lit) >= 2*len(tag) && strings.HasSuffix(lit, tag) {
			return lit[len(tag) : len(lit)-len(tag)]
		}
	}
	if i := strings.IndexAny(lit, `'"`); i >= 0 && len(lit) >= i+2 && lit[len(lit)-1] == lit[i] {
		q := lit[i : i+1]
		return strings.ReplaceAll(lit[i+1:len(lit)-1], q+q, q)
	}
	return lit
}

// prefixAt reports whether query[i] may be a one-letter prefix of a string
// (E'...', X'...', B'...', N'...'): one of those letters, not the end of a
// longer name.
func prefixAt(query string, i int) bool {
	return i >= 0 && strings.IndexByte("EeXxBbNn", query[i]) >= 0 && (i == 0 || !identByte(query[i-1]))
}

func lastByte(b *strings.Builder) byte {
	s := b.String()
	return s[len(s)-1]
}

func space(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// identByte reports whether c may be part of an unquoted identifier (or a
// placeholder such as $1): a digit after it belongs to the name, not to a
// number.
func identByte(c byte) bool {
	return c == '_' || c == '$' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c >= 0x80
}

func digit(c byte) bool { return '0' <= c && c <= '9' }

// hidden is what the lexers make of a byte: shown, part of a comment
// (removed) or part of a literal (replaced by ?).
type hidden uint8

const (
	shown hidden = iota
	comment
	literal
)

// rules are how one database (in one mode) reads SQL.
type rules struct {
	backslash bool // a backslash escapes the next byte in every string
	eString   bool // E'...' strings escape with a backslash (PostgreSQL)
	dqString  bool // "..." is a string, not a name (MySQL)
	dollar    bool // $tag$...$tag$ strings (PostgreSQL)
	nested    bool // /* */ comments nest (PostgreSQL)
	mysql     bool // # comments, -- only before a space, `names`, /*! executable comments */
	brackets  bool // [names] and `names` (SQLite)
}

// The states of a lexer.
const (
	inCode uint8 = iota
	inNumber
	inLineComment
	inBlockComment
	inString // '...', or "..." where it is a string
	inName   // "...", `...` or [...]: a quoted name
	inDollar // $tag$...$tag$
)

// lexer reads SQL one byte at a time as one database does, and says of
// each byte whether it is shown, in a comment or in a literal. It looks
// ahead at most the length of a dollar quote's tag.
type lexer struct {
	rules
	q      string
	state  uint8
	quote  byte // the closing quote of a string or name
	esc    bool // the string's backslashes escape
	skip   int  // bytes still to take as they are (a doubled quote, an escape, a two-byte token)
	skipAs hidden
	depth  int    // nesting of /* */ (PostgreSQL)
	exec   bool   // inside MySQL's /*! ... */, which is SQL
	tag    string // the dollar quote's tag, $ and $ included
}

// next says what byte i of q is; it is called for i = 0, 1, 2... in turn.
func (l *lexer) next(i int) hidden {
	if l.skip > 0 {
		l.skip--
		return l.skipAs
	}
	q, c := l.q, l.q[i]
	at := func(k int) byte { // q[i+k], 0 past the end
		if i+k < len(q) {
			return q[i+k]
		}
		return 0
	}
	take := func(n int, h hidden) hidden { // this byte and n more are h
		l.skip, l.skipAs = n, h
		return h
	}
	switch l.state {
	case inNumber:
		switch {
		case identByte(c) && c != '$' || c == '.':
			return literal
		case (c == '+' || c == '-') && (q[i-1] == 'e' || q[i-1] == 'E') && digit(at(1)):
			return literal
		}
		l.state = inCode
		return l.next(i)

	case inLineComment:
		if c == '\n' || c == '\r' && !l.mysql && !l.brackets {
			l.state = inCode
			return shown
		}
		return comment

	case inBlockComment:
		switch {
		case c == '*' && at(1) == '/':
			if l.depth--; l.depth == 0 {
				l.state = inCode
			}
			return take(1, comment)
		case c == '/' && at(1) == '*' && l.nested:
			l.depth++
			return take(1, comment)
		}
		return comment

	case inString:
		switch {
		case c == '\\' && l.esc:
			return take(min(1, len(q)-i-1), literal)
		case c == l.quote && at(1) == l.quote:
			return take(1, literal)
		case c == l.quote:
			l.state = inCode
		}
		return literal

	case inName:
		switch {
		case c == l.quote && at(1) == l.quote && l.quote != ']':
			return take(1, shown)
		case c == l.quote:
			l.state = inCode
		}
		return shown

	case inDollar:
		if c == '$' && strings.HasPrefix(q[i:], l.tag) {
			l.state = inCode
			return take(len(l.tag)-1, literal)
		}
		return literal
	}

	// In code.
	prevIdent := i > 0 && identByte(q[i-1])
	switch {
	case c == '\'':
		l.state, l.quote = inString, c
		l.esc = l.backslash || l.eString && i > 0 && (q[i-1] == 'E' || q[i-1] == 'e') && (i == 1 || !identByte(q[i-2]))
		return literal
	case c == '"' && l.dqString:
		l.state, l.quote, l.esc = inString, c, l.backslash
		return literal
	case c == '"', c == '`' && (l.mysql || l.brackets), c == '[' && l.brackets:
		l.state, l.quote = inName, c
		if c == '[' {
			l.quote = ']'
		}
		return shown
	case c == '-' && at(1) == '-' && (!l.mysql || at(2) == 0 || at(2) <= ' ' || at(2) == 0x7f):
		l.state = inLineComment
		return comment
	case c == '#' && l.mysql:
		l.state = inLineComment
		return comment
	case c == '/' && at(1) == '*' && l.mysql && (at(2) == '!' || at(2) == 'M' && at(3) == '!') && !l.exec:
		// Executable comment: SQL to MySQL (MariaDB's /*M! too), after
		// the version number it may start with.
		l.exec = true
		n := 2
		if at(2) == 'M' {
			n = 3
		}
		for n < 9 && digit(at(n+1)) {
			n++
		}
		return take(n, shown)
	case c == '*' && at(1) == '/' && l.exec:
		l.exec = false
		return take(1, shown)
	case c == '/' && at(1) == '*':
		l.state, l.depth = inBlockComment, 1
		return take(1, comment)
	case c == '$' && l.dollar && !prevIdent:
		if tag, ok := dollarTag(q[i:]); ok {
			l.state, l.tag = inDollar, tag
			return take(len(tag)-1, literal)
		}
	case digit(c) && !prevIdent && !(i > 0 && q[i-1] == '?'),
		c == '.' && digit(at(1)) && !prevIdent:
		l.state = inNumber
		return literal
	}
	return shown
}

// dollarTag returns the opening $tag$ (or $$) that s begins with: a tag is
// a name that does not begin with a digit.
func dollarTag(s string) (string, bool) {
	for j := 1; j < len(s); j++ {
		c := s[j]
		switch {
		case c == '$':
			return s[:j+1], true
		case !identByte(c) || c == '$' || j == 1 && digit(c):
			return "", false
		}
	}
	return "", false
}
