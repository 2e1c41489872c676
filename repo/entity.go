package repo

import (
	"database/sql"
	"database/sql/driver"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode"
	"unsafe"
)

// column is one mapped field of an entity.
type column struct {
	name   string // the column's name in the database
	field  string // the Go field path, for messages ("Base.ID")
	offset uintptr
	typ    reflect.Type

	pk, auto, version, created, updated, readonly bool

	// ptr returns a pointer to the field of the struct at p, as a Scan
	// destination; val returns its value as a bind argument.
	ptr func(p unsafe.Pointer) any
	val func(p unsafe.Pointer) any
}

// entity is what a repository knows of its struct type, read once.
type entity struct {
	typ     reflect.Type
	table   string
	cols    []column
	byName  map[string]int
	pk      int // index in cols
	version int // -1: none
	created int
	updated int
}

var (
	timeType    = reflect.TypeFor[time.Time]()
	scannerType = reflect.TypeFor[sql.Scanner]()
	valuerType  = reflect.TypeFor[driver.Valuer]()
)

// tableNamer is implemented by entities that name their table.
type tableNamer interface{ TableName() string }

// newEntity reads the mapping of struct type t from its db tags.
func newEntity(t reflect.Type, table string) (*entity, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("repo: %s is not a struct", t)
	}
	e := &entity{typ: t, byName: map[string]int{}, pk: -1, version: -1, created: -1, updated: -1}
	if err := e.addFields(t, 0, ""); err != nil {
		return nil, err
	}
	if len(e.cols) == 0 {
		return nil, fmt.Errorf("repo: %s maps no column", t)
	}
	if e.pk < 0 {
		return nil, fmt.Errorf("repo: %s has no primary key: tag one field `db:\"name,pk\"`", t)
	}
	e.table = table
	if e.table == "" {
		e.table = defaultTable(t)
	}
	return e, nil
}

// addFields maps the fields of struct type t, found at offset base of the
// entity; embedded structs are flattened as sqlx does.
func (e *entity) addFields(t reflect.Type, base uintptr, path string) error {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, tagged := f.Tag.Lookup("db")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		fpath := path + f.Name
		if !f.IsExported() {
			if tagged && !f.Anonymous {
				return fmt.Errorf("repo: %s.%s is unexported but has a db tag", e.typ, fpath)
			}
			if !f.Anonymous || f.Type.Kind() != reflect.Struct || isValueType(f.Type) {
				continue // sqlx maps the exported fields of embedded structs only
			}
		}
		if f.Anonymous && !isValueType(f.Type) {
			if f.Type.Kind() == reflect.Pointer {
				return fmt.Errorf("repo: %s.%s: embedded pointers are not supported", e.typ, fpath)
			}
			if f.Type.Kind() == reflect.Struct {
				if tagged {
					return fmt.Errorf("repo: %s.%s: a db tag on an embedded struct is not supported", e.typ, fpath)
				}
				if err := e.addFields(f.Type, base+f.Offset, fpath+"."); err != nil {
					return err
				}
				continue
			}
		}
		if name == "" {
			name = strings.ToLower(f.Name) // sqlx's default name mapper
		}
		c := column{name: name, field: fpath, offset: base + f.Offset, typ: f.Type}
		if err := c.setOptions(opts); err != nil {
			return fmt.Errorf("repo: %s.%s: %w", e.typ, fpath, err)
		}
		if err := e.add(c); err != nil {
			return err
		}
	}
	return nil
}

// isValueType reports whether a struct-typed field is one column (a time,
// or a type that scans itself) rather than a group of fields.
func isValueType(t reflect.Type) bool {
	return t == timeType || reflect.PointerTo(t).Implements(scannerType) || t.Implements(valuerType)
}

func (c *column) setOptions(opts string) error {
	for o := range strings.SplitSeq(opts, ",") {
		switch strings.TrimSpace(o) {
		case "":
		case "pk":
			c.pk = true
		case "auto":
			c.auto = true
		case "version":
			c.version = true
		case "created":
			c.created = true
		case "updated":
			c.updated = true
		case "readonly":
			c.readonly = true
		default:
			return fmt.Errorf("unknown db tag option %q (want pk, auto, version, created, updated or readonly)", o)
		}
	}
	switch {
	case c.auto && !c.pk:
		return fmt.Errorf("auto is only for the primary key; tag other database-made columns readonly")
	case c.version && !isInteger(c.typ):
		return fmt.Errorf("the version column must be an integer, not %s", c.typ)
	case (c.created || c.updated) && c.typ != timeType:
		return fmt.Errorf("created and updated columns must be time.Time, not %s", c.typ)
	case c.readonly && (c.pk || c.version || c.created || c.updated):
		return fmt.Errorf("readonly cannot be combined with pk, version, created or updated")
	case c.version && (c.pk || c.created || c.updated):
		return fmt.Errorf("version cannot be combined with pk, created or updated")
	case c.created && c.updated:
		return fmt.Errorf("a column cannot be both created and updated")
	}
	if c.typ.Kind() == reflect.Struct && !isValueType(c.typ) {
		return fmt.Errorf("struct type %s is neither time.Time nor an sql.Scanner: tag it `db:\"-\"` to skip it", c.typ)
	}
	c.ptr, c.val = accessors(c.typ)
	return nil
}

// add appends a column, checking the rules that span columns.
func (e *entity) add(c column) error {
	if prev, dup := e.byName[c.name]; dup {
		return fmt.Errorf("repo: %s.%s and %s.%s both map column %q", e.typ, e.cols[prev].field, e.typ, c.field, c.name)
	}
	i := len(e.cols)
	for _, role := range []struct {
		on   bool
		slot *int
		what string
	}{{c.pk, &e.pk, "primary key"}, {c.version, &e.version, "version"}, {c.created, &e.created, "created"}, {c.updated, &e.updated, "updated"}} {
		if !role.on {
			continue
		}
		if *role.slot >= 0 {
			return fmt.Errorf("repo: %s has two %s columns: %s and %s (composite keys are not supported)", e.typ, role.what, e.cols[*role.slot].field, c.field)
		}
		*role.slot = i
	}
	e.byName[c.name] = i
	e.cols = append(e.cols, c)
	return nil
}

func isInteger(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

// accessors returns the functions that reach a field of type t at a given
// address: for the common types without reflection.
func accessors(t reflect.Type) (ptr, val func(unsafe.Pointer) any) {
	switch t {
	case reflect.TypeFor[int64]():
		return typed[int64]()
	case reflect.TypeFor[int]():
		return typed[int]()
	case reflect.TypeFor[int32]():
		return typed[int32]()
	case reflect.TypeFor[string]():
		return typed[string]()
	case reflect.TypeFor[bool]():
		return typed[bool]()
	case reflect.TypeFor[float64]():
		return typed[float64]()
	case reflect.TypeFor[[]byte]():
		return typed[[]byte]()
	case timeType:
		return typed[time.Time]()
	case reflect.TypeFor[*string]():
		return typed[*string]()
	case reflect.TypeFor[*int64]():
		return typed[*int64]()
	case reflect.TypeFor[*time.Time]():
		return typed[*time.Time]()
	}
	ptr = func(p unsafe.Pointer) any { return reflect.NewAt(t, p).Interface() }
	if !t.Implements(valuerType) && reflect.PointerTo(t).Implements(valuerType) {
		// Value has a pointer receiver: bind the pointer, or database/sql
		// would not see the Valuer.
		return ptr, ptr
	}
	return ptr, func(p unsafe.Pointer) any { return reflect.NewAt(t, p).Elem().Interface() }
}

func typed[F any]() (ptr, val func(unsafe.Pointer) any) {
	return func(p unsafe.Pointer) any { return (*F)(p) },
		func(p unsafe.Pointer) any { return *(*F)(p) }
}

// defaultTable is the snake_case plural of the type's name: User -> users,
// OrderItem -> order_items, Category -> categories, HTTPLog -> http_logs.
func defaultTable(t reflect.Type) string {
	name, _, _ := strings.Cut(t.Name(), "[") // a generic type's arguments
	return plural(snake(name))
}

func snake(s string) string {
	rs := []rune(s)
	var b strings.Builder
	for i, r := range rs {
		if unicode.IsUpper(r) {
			prevLower := i > 0 && (unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1]))
			nextLower := i > 0 && i+1 < len(rs) && unicode.IsUpper(rs[i-1]) && unicode.IsLower(rs[i+1])
			if prevLower || nextLower {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

func plural(s string) string {
	switch {
	case s == "":
		return s
	case strings.HasSuffix(s, "s"), strings.HasSuffix(s, "x"), strings.HasSuffix(s, "z"),
		strings.HasSuffix(s, "ch"), strings.HasSuffix(s, "sh"):
		return s + "es"
	case strings.HasSuffix(s, "y") && len(s) > 1 && !strings.ContainsRune("aeiou", rune(s[len(s)-2])):
		return s[:len(s)-1] + "ies"
	}
	return s + "s"
}

// addr is the address of the struct v points to.
func addr[T any](v *T) unsafe.Pointer { return unsafe.Pointer(v) }

// names returns the columns' names, for messages.
func (e *entity) names() string {
	ns := make([]string, len(e.cols))
	for i, c := range e.cols {
		ns[i] = c.name
	}
	return strings.Join(ns, ", ")
}
