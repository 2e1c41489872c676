package drv

import (
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Hidden is what stands for a password in a redacted text.
const Hidden = "xxxxx"

// What in a DSN could be a password, whatever its driver makes of it:
//
//   - a URL's user information: everything between "://" and the last
//     "@" (and, of it, what follows the first ":");
//   - without "://", everything before the last "@" (the mysql driver's
//     user:password@...);
//   - the value of a key named like a password (password=, sslpassword=,
//     _auth_pass=, passwd=, pwd=...), quoted or not, in key=value pairs
//     as in a URL's query.
//
// Mask, Secrets and Redact read a DSN so, leniently: a DSN its driver
// refuses is read the same way, so that an error about it shows no
// password either.

// passwordKey matches a key named like a password, its "=" and the
// spaces around it.
var passwordKey = regexp.MustCompile(`(?i)[a-z0-9_.-]*(?:pass|passwd|password|pwd)[ \t\r\n\f\v]*=[ \t\r\n\f\v]*`)

// span is a part of a DSN, [from, to).
type span struct{ from, to int }

// userinfo are the spans of dsn that hold a user and password: of a URL,
// between "://" and the last "@"; before the last "@" that no "://"
// precedes (the mysql driver's user:password@, or text before a URL).
func userinfo(dsn string) []span {
	at := strings.LastIndexByte(dsn, '@')
	if at < 0 {
		return nil
	}
	i := strings.Index(dsn, "://")
	if i < 0 || i+3 > at {
		return []span{{0, at}}
	}
	ss := []span{{i + 3, at}}
	if b := strings.LastIndexByte(dsn[:i], '@'); b >= 0 {
		ss = append(ss, span{0, b})
	}
	return ss
}

// passwordValues are the spans of the values of password keys in dsn.
func passwordValues(dsn string) []span {
	var spans []span
	for _, m := range passwordKey.FindAllStringIndex(dsn, -1) {
		spans = append(spans, span{m[1], valueEnd(dsn, m[1])})
	}
	return spans
}

// valueEnd is where the value that begins at i in dsn ends: its closing
// quote, or else the end of dsn, when it is quoted; else the first space,
// '&' or ';' not escaped by a backslash.
func valueEnd(dsn string, i int) int {
	if i < len(dsn) && (dsn[i] == '\'' || dsn[i] == '"') {
		q := dsn[i]
		for j := i + 1; j < len(dsn); j++ {
			switch dsn[j] {
			case '\\':
				j++
			case q:
				return j + 1
			}
		}
		return len(dsn)
	}
	for j := i; j < len(dsn); j++ {
		switch dsn[j] {
		case '\\':
			j++
		case ' ', '\t', '\n', '\r', '\f', '\v', '&', ';':
			return j
		}
	}
	return len(dsn)
}

// spans are the parts of dsn that could be a password.
func spans(dsn string) []span {
	return append(userinfo(dsn), passwordValues(dsn)...)
}

// hide returns text with each of ss (merged where they overlap or touch)
// replaced by Hidden.
func hide(text string, ss []span) string {
	slices.SortFunc(ss, func(a, b span) int { return a.from - b.from })
	var b strings.Builder
	last := 0
	for i := 0; i < len(ss); {
		s := ss[i]
		for i++; i < len(ss) && ss[i].from <= s.to; i++ {
			s.to = max(s.to, ss[i].to)
		}
		if s.to <= s.from {
			continue
		}
		s.from = max(s.from, last)
		b.WriteString(text[last:s.from])
		b.WriteString(Hidden)
		last = s.to
	}
	b.WriteString(text[last:])
	return b.String()
}

// Mask returns dsn with everything that could be a password replaced by
// Hidden: the redacted form of a DSN, whether its driver accepts it or
// not. A driver given the masked DSN meets no password to quote.
func Mask(dsn string) string { return hide(dsn, spans(dsn)) }

// Secrets returns the strings of dsn that could be a password, as a
// driver could read them (raw, unquoted, unescaped, percent-decoded),
// longest first: Redact removes them from a text.
func Secrets(dsn string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	// In user information, a password is what follows a ":" up to an
	// "@": any of them, as a parser could cut it.
	for _, u := range userinfo(dsn) {
		var colons []int
		for j := u.from; j <= u.to && len(out) < maxSecrets; j++ {
			switch dsn[j] {
			case ':':
				colons = append(colons, j)
			case '@':
				for _, c := range colons {
					pw := dsn[c+1 : j]
					add(pw)
					if d, err := url.PathUnescape(pw); err == nil {
						add(d)
					}
				}
			}
		}
	}
	for _, s := range passwordValues(dsn) {
		raw := dsn[s.from:s.to]
		add(raw)
		v := raw
		if len(v) > 0 && (v[0] == '\'' || v[0] == '"') {
			v = strings.TrimSuffix(v[1:], v[:1])
			add(v)
		}
		add(unescape(v))
		if d, err := url.QueryUnescape(v); err == nil {
			add(d)
		}
		// Read only up to the first space or quote, as a parser that
		// stops there would.
		if i := strings.IndexAny(raw, " \t\r\n\f\v'\"&;"); i > 0 {
			add(raw[:i])
		}
	}
	// A parser that reads the DSN as runes (lib/pq) turns each byte that
	// is not UTF-8 into U+FFFD.
	for _, s := range out {
		if !utf8.ValidString(s) {
			add(string([]rune(s)))
		}
	}
	slices.SortStableFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

// unescape removes the backslashes of a libpq value.
func unescape(v string) string {
	if !strings.Contains(v, `\`) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// maxSecrets bounds the pieces of user information Secrets tries: a DSN
// has few ":" and "@".
const maxSecrets = 1024

// inText matches, in a message, a URL's user information and the value
// of a password key.
var inText = regexp.MustCompile(`(?i)(://)[^\s/@]*@|([a-z0-9_.-]*(?:pass|passwd|password|pwd)\s*=\s*)('(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?|(?:[^\s&;\\]|\\.)*)`)

// Redact returns text with each of secrets (wherever it occurs), and
// what text shows of a URL's user information or a password key's value,
// replaced by Hidden. Both are found in text as it is, then hidden at
// once: neither hides the context by which the other finds its part.
func Redact(text string, secrets ...string) string {
	var ss []span
	for _, s := range secrets {
		if s == "" {
			continue
		}
		for i := 0; ; {
			j := strings.Index(text[i:], s)
			if j < 0 {
				break
			}
			ss = append(ss, span{i + j, i + j + len(s)})
			i += j + 1
		}
	}
	for _, m := range inText.FindAllStringIndex(text, -1) {
		if strings.HasPrefix(text[m[0]:], "://") {
			ss = append(ss, span{m[0] + 3, m[1] - 1})
		} else if k := passwordKey.FindStringIndex(text[m[0]:m[1]]); k != nil && k[0] == 0 {
			ss = append(ss, span{m[0] + k[1], m[1]})
		}
	}
	return hide(text, ss)
}

// MayQuote reports whether text may quote a part of one of secrets: it
// holds one of them whole, four bytes in a row of one, or a shorter piece
// of one between the characters at which a parser cuts a DSN (a driver
// that misreads user:pa/ss@tcp(h) names the network user:pa). A driver's
// message about a DSN that it could not parse may quote such a piece of a
// password that no parse found whole.
func MayQuote(text string, secrets ...string) bool {
	const n = 4
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			return true
		}
		for i := 0; i+n <= len(s); i++ {
			if strings.Contains(text, s[i:i+n]) {
				return true
			}
		}
		for _, p := range strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune(cuts, r) || unicode.IsSpace(r) }) {
			if len(p) < n && strings.Contains(text, p) {
				return true
			}
		}
	}
	return false
}

// cuts are the characters at which the drivers cut a DSN.
const cuts = `/?#@:&;=()'"\%`

// RedactErr is err with secrets removed from its text, still matching
// what err matches (errors.Is, errors.As); err itself when its text holds
// none of them.
func RedactErr(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if red := Redact(msg, secrets...); red != msg {
		return &redactedError{msg: red, err: err}
	}
	return err
}

// redactedError is an error whose text had a secret in it.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
