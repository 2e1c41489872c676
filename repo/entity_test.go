package repo_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/repo"
	"github.com/enginekit/enginekit/session"
)

// sqliteManager opens an engine on a fresh SQLite file for tests that
// need a Manager but no table.
func sqliteManager(t *testing.T) (*dbfx.Engine, *session.Manager) {
	t.Helper()
	e, err := dbfx.Open(testContext(t), fxtest.SQLite(t), fxtest.WithDrivers())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return e, e.Sessions()
}

type (
	noPK struct {
		Name string `db:"name"`
	}
	twoPKs struct {
		A int64 `db:"a,pk"`
		B int64 `db:"b,pk"`
	}
	unexportedTagged struct {
		ID   int64  `db:"id,pk"`
		name string `db:"name"`
	}
	textVersion struct {
		ID      int64  `db:"id,pk"`
		Version string `db:"version,version"`
	}
	unknownOption struct {
		ID int64 `db:"id,pk,autoincrement"`
	}
	intCreated struct {
		ID      int64 `db:"id,pk"`
		Created int64 `db:"created_at,created"`
	}
	autoNotPK struct {
		ID  int64 `db:"id,pk"`
		Seq int64 `db:"seq,auto"`
	}
	sameColumn struct {
		ID   int64  `db:"id,pk"`
		A    string `db:"name"`
		Name string
	}
	embeddedPointer struct {
		*Base
		Name string `db:"name"`
	}
	nestedStruct struct {
		ID   int64 `db:"id,pk"`
		Addr struct{ Street string }
	}
	readonlyPK struct {
		ID int64 `db:"id,pk,readonly"`
	}
	int32Key struct {
		ID int32 `db:"id,pk,auto"`
	}
)

// Base is embedded by entities to share columns.
type Base struct {
	ID      int64     `db:"id,pk,auto"`
	Created time.Time `db:"created_at,created"`
}

func TestNewRefusesBadMappings(t *testing.T) {
	_, m := sqliteManager(t)
	tests := []struct {
		name string
		give func() error
		want []string // in the message
	}{
		{"no pk", newErr[noPK, int64](m), []string{"noPK", "no primary key"}},
		{"two pks", newErr[twoPKs, int64](m), []string{"twoPKs", "A", "B"}},
		{"tag on an unexported field", newErr[unexportedTagged, int64](m), []string{"unexportedTagged.name", "unexported"}},
		{"text version", newErr[textVersion, int64](m), []string{"textVersion.Version", "integer"}},
		{"unknown option", newErr[unknownOption, int64](m), []string{"unknownOption.ID", "autoincrement"}},
		{"created not a time", newErr[intCreated, int64](m), []string{"intCreated.Created", "time.Time"}},
		{"auto not on the pk", newErr[autoNotPK, int64](m), []string{"autoNotPK.Seq", "auto"}},
		{"one column twice", newErr[sameColumn, int64](m), []string{"sameColumn.A", "sameColumn.Name", `"name"`}},
		{"embedded pointer", newErr[embeddedPointer, int64](m), []string{"embeddedPointer.Base", "pointer"}},
		{"nested struct", newErr[nestedStruct, int64](m), []string{"nestedStruct.Addr", `db:"-"`}},
		{"readonly pk", newErr[readonlyPK, int64](m), []string{"readonlyPK.ID", "readonly"}},
		{"ID type", newErr[User, int](m), []string{"User.ID", "int64", "int"}},
		{"not a struct", newErr[int64, int64](m), []string{"int64", "not a struct"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.give()
			if err == nil {
				t.Fatal("New accepted the mapping")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("New: %v; want the message to name %q", err, w)
				}
			}
		})
	}
}

func newErr[T any, ID comparable](m *session.Manager) func() error {
	return func() error {
		_, err := repo.New[T, ID](m)
		return err
	}
}

type (
	OrderItem struct {
		ID int64 `db:"id,pk"`
	}
	Category struct {
		ID int64 `db:"id,pk"`
	}
	HTTPLog struct {
		ID int64 `db:"id,pk"`
	}
	Box struct {
		ID int64 `db:"id,pk"`
	}
	Day struct {
		ID int64 `db:"id,pk"`
	}
	Named struct {
		ID int64 `db:"id,pk"`
	}
	PtrNamed struct {
		ID int64 `db:"id,pk"`
	}
)

func (Named) TableName() string     { return "named_by_method" }
func (*PtrNamed) TableName() string { return "named_by_pointer_method" }

func TestTableNames(t *testing.T) {
	_, m := sqliteManager(t)
	tests := []struct {
		name string
		give func() (string, error)
		want string
	}{
		{"type name", tableOf[User, int64](m), "users"},
		{"two words", tableOf[OrderItem, int64](m), "order_items"},
		{"y to ies", tableOf[Category, int64](m), "categories"},
		{"vowel and y", tableOf[Day, int64](m), "days"},
		{"x to xes", tableOf[Box, int64](m), "boxes"},
		{"acronym", tableOf[HTTPLog, int64](m), "http_logs"},
		{"TableName method", tableOf[Setting, string](m), "app_settings"},
		{"TableName on the pointer", tableOf[PtrNamed, int64](m), "named_by_pointer_method"},
		{"Table option wins", tableOf[Named, int64](m, repo.Table("chosen")), "chosen"},
		{"TableName without option", tableOf[Named, int64](m), "named_by_method"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.give()
			if err != nil || got != tt.want {
				t.Fatalf("table %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func tableOf[T any, ID comparable](m *session.Manager, opts ...repo.Option) func() (string, error) {
	return func() (string, error) {
		r, err := repo.New[T, ID](m, opts...)
		if err != nil {
			return "", err
		}
		return r.Table(), nil
	}
}

// Article embeds Base, has an untagged field (mapped lowercase, as sqlx
// does), a skipped one, and lives in a table named with a dotted name on
// PostgreSQL (a schema).
type Article struct {
	Base
	Title    string
	Body     string    `db:"body"`
	Ignored  string    `db:"-"`
	internal string    //nolint:unused // unexported and untagged: not mapped
	Seen     time.Time `db:"seen_at"`
}

func TestEmbeddedStructAndSmallKeys(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		v := setup(t, cfg)
		ctx := testContext(t)
		table, ddlTable := "articles", "articles"
		if v.driver == "postgres" {
			exec(t, v.e, "CREATE SCHEMA blog")
			table, ddlTable = "blog.articles", "blog.articles"
		}
		key := map[string]string{
			"sqlite3":  "INTEGER PRIMARY KEY",
			"postgres": "BIGSERIAL PRIMARY KEY",
			"mysql":    "BIGINT AUTO_INCREMENT PRIMARY KEY",
		}[v.driver]
		ts := map[string]string{"sqlite3": "TIMESTAMP", "postgres": "TIMESTAMPTZ", "mysql": "DATETIME(6)"}[v.driver]
		exec(t, v.e, "CREATE TABLE "+ddlTable+" (id "+key+", created_at "+ts+" NOT NULL, title VARCHAR(100) NOT NULL, body TEXT NOT NULL, seen_at "+ts+" NOT NULL)")
		articles, err := repo.New[Article, int64](v.m, repo.Table(table))
		wantErrIs(t, "New", err, nil)
		seen := time.Date(2024, 2, 29, 12, 30, 45, 123456000, time.UTC)
		a := Article{Title: "t", Body: "b", Ignored: "x", Seen: seen}
		wantErrIs(t, "Insert", articles.Insert(ctx, &a), nil)
		if a.ID == 0 || a.Created.IsZero() {
			t.Fatalf("Insert left %+v", a)
		}
		got, err := articles.First(ctx, repo.Where(repo.Eq("title", "t")))
		wantErrIs(t, "First", err, nil)
		if got.ID != a.ID || got.Body != "b" || got.Ignored != "" || !got.Seen.Equal(seen) || !got.Created.Equal(a.Created) {
			t.Fatalf("First = %+v, want %+v", got, a)
		}

		// An int32 generated key is filled in too.
		exec(t, v.e, "CREATE TABLE int32_keys (id "+key+")")
		small, err := repo.New[int32Key, int32](v.m, repo.Table("int32_keys"))
		wantErrIs(t, "New", err, nil)
		ks := make([]int32Key, 3)
		wantErrIs(t, "InsertMany", small.InsertMany(ctx, ks), nil)
		one := int32Key{}
		wantErrIs(t, "Insert", small.Insert(ctx, &one), nil)
		if ks[0].ID != 1 || ks[2].ID != 3 || one.ID != 4 {
			t.Fatalf("keys %v then %d, want 1..3 then 4", ks, one.ID)
		}
		fxtest.RequireNoLeaks(t, v.e)
	})
}

// Token has a key the database generates that is not an integer.
type Token struct {
	ID   string `db:"id,pk,auto"`
	Note string `db:"note"`
}

func TestGeneratedTextKey(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		v := setup(t, cfg)
		ctx := testContext(t)
		switch v.driver {
		case "mysql":
			_, err := repo.New[Token, string](v.m)
			if err == nil || !strings.Contains(err.Error(), "RETURNING") {
				t.Fatalf("New = %v, want an error: MySQL cannot return a generated text key", err)
			}
			return
		case "postgres":
			exec(t, v.e, "CREATE TABLE tokens (id TEXT PRIMARY KEY DEFAULT md5(random()::text || clock_timestamp()::text), note TEXT NOT NULL)")
		case "sqlite3":
			exec(t, v.e, "CREATE TABLE tokens (id TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(8)))), note TEXT NOT NULL)")
		}
		tokens, err := repo.New[Token, string](v.m)
		wantErrIs(t, "New", err, nil)
		ts := []Token{{Note: "a"}, {Note: "b"}, {Note: "c"}}
		wantErrIs(t, "InsertMany", tokens.InsertMany(ctx, ts), nil)
		for _, tk := range ts {
			got, err := tokens.Get(ctx, tk.ID)
			if err != nil || got.Note != tk.Note {
				t.Fatalf("Get(%q) = %+v, %v; want note %q", tk.ID, got, err, tk.Note)
			}
		}
		fxtest.RequireNoLeaks(t, v.e)
	})
}
