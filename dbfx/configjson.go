package dbfx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"
)

var _ json.Unmarshaler = (*Config)(nil)

var durationType = reflect.TypeFor[time.Duration]()

// UnmarshalJSON reads c from a JSON object whose keys are Config's json
// tags (max_open_conns, connect_timeout...) or, as before the tags, its
// field names in any case (MaxOpenConns). A duration is a Go duration
// string ("5s", "1m30s", "-1ns") or an integer number of nanoseconds (5000000000;
// -1 for DeadPeerTimeout's and IdleCheck's -1). As with encoding/json,
// the fields the object does not name keep their values, and null leaves
// a field as it is.
//
// Every bad key (one that is not a field of Config, a value of the wrong
// type, a malformed duration) is named in one error matching ErrConfig;
// its text quotes durations but never a DSN. Decoding does not validate:
// call Validate, as Open does.
//
// A struct that embeds Config takes this method (and MarshalJSON), so
// that encoding/json hands it the whole object: its own fields are then
// unknown keys here, an error. Give the Config a field name instead
// (DB dbfx.Config `json:"db"`).
func (c *Config) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return &ConfigError{Engine: c.engineName(), Fields: []FieldError{{Field: "(config)", Reason: "is a JSON " + ute.Value + ", want an object"}}}
		}
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	v := reflect.ValueOf(c).Elem()
	t := v.Type()
	var bad []FieldError
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		msg := raw[key]
		i := configField(t, key)
		if i < 0 {
			bad = append(bad, FieldError{Field: key, Reason: "is not a field of dbfx.Config"})
			continue
		}
		if string(bytes.TrimSpace(msg)) == "null" {
			continue
		}
		f := v.Field(i)
		if f.Type() == durationType {
			d, why := decodeDuration(msg)
			if why != "" {
				bad = append(bad, FieldError{Field: key, Reason: why})
				continue
			}
			f.SetInt(int64(d))
			continue
		}
		ptr := reflect.New(f.Type())
		if err := json.Unmarshal(msg, ptr.Interface()); err != nil {
			bad = append(bad, FieldError{Field: key, Reason: typeProblem(err, f.Type())})
			continue
		}
		f.Set(ptr.Elem())
	}
	if len(bad) > 0 {
		return &ConfigError{Engine: c.engineName(), Fields: bad}
	}
	return nil
}

// engineName is c's name for messages.
func (c *Config) engineName() string {
	if c.Name == "" {
		return DefaultName
	}
	return c.Name
}

// configField is the index of the field of Config that key names: its json
// tag, or its Go name, either in any case; -1 when none does.
func configField(t reflect.Type, key string) int {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if strings.EqualFold(key, tag) || strings.EqualFold(key, f.Name) {
			return i
		}
	}
	return -1
}

// decodeDuration reads a JSON duration: a Go duration string or an
// integer number of nanoseconds. why says what is wrong, quoting a bad
// string (durations hold no secrets).
func decodeDuration(msg json.RawMessage) (d time.Duration, why string) {
	var s string
	if err := json.Unmarshal(msg, &s); err == nil {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			if len(s) > 40 {
				s = s[:40] + "..."
			}
			return 0, fmt.Sprintf("%q is not a duration such as \"5s\" or \"1m30s\"", s)
		}
		return d, ""
	}
	var n json.Number
	if err := json.Unmarshal(msg, &n); err == nil {
		i, err := n.Int64()
		if err != nil {
			return 0, fmt.Sprintf("%s is not an integer number of nanoseconds: write a duration such as \"5s\"", n)
		}
		return time.Duration(i), ""
	}
	return 0, "is a JSON " + jsonKind(msg) + ", want a duration such as \"5s\" or a number of nanoseconds"
}

// typeProblem says why a value did not decode into a field of type t,
// without quoting the value (it may be a DSN).
func typeProblem(err error, t reflect.Type) string {
	want := map[reflect.Kind]string{reflect.String: "a string", reflect.Int: "an integer", reflect.Slice: "an array of strings"}[t.Kind()]
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		return "is a JSON " + ute.Value + ", want " + want
	}
	return "want " + want
}

// jsonKind names the kind of a JSON value.
func jsonKind(msg json.RawMessage) string {
	switch b := bytes.TrimSpace(msg); {
	case len(b) == 0:
		return "nothing"
	case b[0] == '{':
		return "object"
	case b[0] == '[':
		return "array"
	case b[0] == 't' || b[0] == 'f':
		return "bool"
	default:
		return "value"
	}
}

// marshalJSON writes the fields of r (Config's, redacted) under their
// json tags, in order, the durations as Go duration strings ("5s"), which
// UnmarshalJSON reads back.
func marshalJSON(r configFields) ([]byte, error) {
	v := reflect.ValueOf(r)
	t := v.Type()
	var b bytes.Buffer
	b.WriteByte('{')
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		key, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if key == "" {
			key = f.Name
		}
		kb, _ := json.Marshal(key)
		b.Write(kb)
		b.WriteByte(':')
		val := v.Field(i).Interface()
		if d, ok := val.(time.Duration); ok {
			val = d.String()
		}
		vb, err := json.Marshal(val)
		if err != nil {
			return nil, err
		}
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
