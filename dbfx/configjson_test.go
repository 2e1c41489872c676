package dbfx_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/enginekit/enginekit/dbfx"
)

// TestConfigTags: every field of Config has json, yaml and mapstructure
// tags, all three the snake_case key that ConfigFromEnv and the log forms
// use.
func TestConfigTags(t *testing.T) {
	typ := reflect.TypeFor[dbfx.Config]()
	seen := map[string]bool{}
	for i := range typ.NumField() {
		f := typ.Field(i)
		key := f.Tag.Get("json")
		if key == "" || seen[key] {
			t.Errorf("%s: json tag %q missing or repeated", f.Name, key)
		}
		seen[key] = true
		for _, loader := range []string{"yaml", "mapstructure"} {
			if got := f.Tag.Get(loader); got != key {
				t.Errorf("%s: %s tag %q, json tag %q", f.Name, loader, got, key)
			}
		}
		if strings.ToLower(strings.ReplaceAll(key, "_", "")) != strings.ToLower(f.Name) {
			t.Errorf("%s: tag %q is not its snake_case name", f.Name, key)
		}
	}
}

// TestConfigJSONRoundTrip: a Config written by MarshalJSON reads back the
// same, durations as "5s" strings.
func TestConfigJSONRoundTrip(t *testing.T) {
	c := dbfx.Config{Name: "audit", Driver: "postgres", DSN: "postgres://app@db/audit",
		Replicas: []string{"postgres://app@replica/audit"}, MaxOpenConns: 7, MaxIdleConns: 3,
		ConnMaxLifetime: time.Hour, ConnMaxIdleTime: time.Minute, AcquireTimeout: 2 * time.Second,
		ConnectTimeout: 5 * time.Second, SlowQuery: 250 * time.Millisecond, LeakThreshold: 7 * time.Second,
		StatementCache: -1, HealthInterval: 8 * time.Second, DeadPeerTimeout: -1, IdleCheck: 1500 * time.Millisecond}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"connect_timeout":"5s"`) || !strings.Contains(string(b), `"idle_check":"1.5s"`) {
		t.Errorf("JSON %s lacks connect_timeout \"5s\" or idle_check \"1.5s\"", b)
	}
	var back dbfx.Config
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, c) {
		t.Fatalf("read back\n%#v\nwant\n%#v", back, c)
	}
}

// TestConfigJSONDurations: a duration is a Go duration string or an
// integer of nanoseconds; keys are the tags or, as before the tags, the
// field names in any case; fields not named keep their values.
func TestConfigJSONDurations(t *testing.T) {
	tests := []struct {
		give string
		want dbfx.Config
	}{
		{`{"connect_timeout":"5s"}`, dbfx.Config{Name: "kept", ConnectTimeout: 5 * time.Second}},
		{`{"connect_timeout":5000000000}`, dbfx.Config{Name: "kept", ConnectTimeout: 5 * time.Second}},
		{`{"ConnectTimeout":"1m30s","MaxOpenConns":4}`, dbfx.Config{Name: "kept", ConnectTimeout: 90 * time.Second, MaxOpenConns: 4}},
		{`{"idle_check":-1,"dead_peer_timeout":"-1ns"}`, dbfx.Config{Name: "kept", IdleCheck: -1, DeadPeerTimeout: -1}},
		{`{"dsn":"file.db","slow_query":" 250ms ","replicas":null}`, dbfx.Config{Name: "kept", DSN: "file.db", SlowQuery: 250 * time.Millisecond}},
		{`{"name":"audit","connect_timeout":null}`, dbfx.Config{Name: "audit"}},
	}
	for _, tt := range tests {
		got := dbfx.Config{Name: "kept"}
		if err := json.Unmarshal([]byte(tt.give), &got); err != nil {
			t.Errorf("%s: %v", tt.give, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %#v, want %#v", tt.give, got, tt.want)
		}
	}
}

// TestConfigJSONErrorsNameTheField: every bad key is named in one error
// matching ErrConfig, which quotes a bad duration but never a DSN.
func TestConfigJSONErrorsNameTheField(t *testing.T) {
	in := `{"name":"audit","connect_timeout":"5 parsecs","acquire_timeout":1.5,"slow_query":true,` +
		`"max_open_conns":"many","conect_timeout":"5s","dsn":42,"replicas":"postgres://u:` + marker + `@h/db"}`
	var c dbfx.Config
	err := json.Unmarshal([]byte(in), &c)
	if !errors.Is(err, dbfx.ErrConfig) {
		t.Fatalf("err = %v, want ErrConfig", err)
	}
	msg := err.Error()
	for _, want := range []string{
		`engine "audit"`,
		`connect_timeout: "5 parsecs" is not a duration`,
		`acquire_timeout: 1.5 is not an integer number of nanoseconds`,
		`slow_query: is a JSON bool, want a duration`,
		`max_open_conns: is a JSON string, want an integer`,
		`conect_timeout: is not a field of dbfx.Config`,
		`dsn: is a JSON number, want a string`,
		`replicas: is a JSON string, want an array of strings`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, marker) {
		t.Errorf("error shows the password: %s", msg)
	}
	var ce *dbfx.ConfigError
	if !errors.As(err, &ce) || len(ce.Fields) != 7 {
		t.Errorf("want a ConfigError of 7 fields, got %#v", err)
	}
}

// TestConfigJSONEmbedded: a struct that embeds Config takes its JSON
// methods; its own fields then fail loudly, naming them, instead of
// staying zero unnoticed.
func TestConfigJSONEmbedded(t *testing.T) {
	var app struct {
		dbfx.Config
		Port int `json:"port"`
	}
	err := json.Unmarshal([]byte(`{"dsn":"app.db","port":8080}`), &app)
	if !errors.Is(err, dbfx.ErrConfig) || !strings.Contains(err.Error(), "port: is not a field of dbfx.Config") {
		t.Fatalf("err = %v", err)
	}
	var named struct {
		DB   dbfx.Config `json:"db"`
		Port int         `json:"port"`
	}
	if err := json.Unmarshal([]byte(`{"db":{"dsn":"app.db","connect_timeout":"5s"},"port":8080}`), &named); err != nil ||
		named.DB.DSN != "app.db" || named.DB.ConnectTimeout != 5*time.Second || named.Port != 8080 {
		t.Fatalf("named field: %+v, %v", named, err)
	}
}
