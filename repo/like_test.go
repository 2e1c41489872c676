package repo_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/repo"
)

// likeNames are the names the LIKE tests search. No two differ only by
// case or accents, and one holds a character outside the BMP, so that
// the databases' collations (ASCII case folding on SQLite; case, accent
// and supplementary-character folding in MariaDB's utf8mb4_general_ci)
// give the same rows as a literal match.
var likeNames = []string{
	"100%", "100% sure", "1000", "a_b", "axb", "a!b", "a!!b", "ab", `a\b`, `a\\b`, `a\%b`,
	"it's", `say "hi"`, "naïve", "日本語テキスト", "Ωμέγα", "😀 smile", "%", "_", "!", `\`, "'", "",
	"plain", `x%_!\'"y`, "!%", "!_", "end%", "end_", "end!", "tab\there", "  spaced  ",
}

// likeNeedles are the strings searched for.
var likeNeedles = []string{
	"%", "_", "!", `\`, "'", `"`, "100%", "100", "a_b", "a!b", "!!", "a%b", `a\b`, `\%`, `\\`,
	"日本", "語テ", "naïve", "Ωμ", "😀", "", "%_!", `x%_!\'"y`, "!%", "!_", "end", "%b", "_b",
	"\t", " ", "  ", "it's", `"hi"`, "[a]", "*", "?", "$1", ":name", "%%", "__",
}

// TestContainsHasPrefixHasSuffix searches names holding LIKE's wildcards,
// the escape character, backslashes, quotes and Unicode: on every
// database exactly the rows whose name contains, starts with or ends with
// the literal string match.
func TestContainsHasPrefixHasSuffix(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		v := setup(t, cfg)
		ctx := testContext(t)
		us := make([]User, len(likeNames))
		for i, name := range likeNames {
			us[i] = newUser(i + 1)
			us[i].Name = name
			if i%2 == 0 {
				us[i].Nick = ptr(name)
			}
		}
		wantErrIs(t, "InsertMany", v.users.InsertMany(ctx, us), nil)
		searchLike(t, v.users, us)
		if v.driver == "mysql" {
			// Backslashes in strings are read by the SQL mode, and values
			// are interpolated by the driver or sent to a prepared
			// statement: the helpers match the same rows either way.
			for _, params := range []string{
				"sql_mode=%27NO_BACKSLASH_ESCAPES%27",
				"sql_mode=%27ANSI_QUOTES,NO_BACKSLASH_ESCAPES,STRICT_ALL_TABLES%27",
				"interpolateParams=false",
				"interpolateParams=false&sql_mode=%27NO_BACKSLASH_ESCAPES%27",
			} {
				t.Run(params, func(t *testing.T) {
					c := cfg
					if strings.Contains(c.DSN, "?") {
						c.DSN += "&" + params
					} else {
						c.DSN += "?" + params
					}
					e, err := dbfx.Open(ctx, c, fxtest.WithDrivers())
					wantErrIs(t, "Open", err, nil)
					t.Cleanup(func() {
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						defer cancel()
						_ = e.Close(ctx)
					})
					var mode string
					wantErrIs(t, "sql_mode", e.DB().GetContext(ctx, &mode, "SELECT @@SESSION.sql_mode"), nil)
					if strings.Contains(params, "NO_BACKSLASH") != strings.Contains(mode, "NO_BACKSLASH_ESCAPES") {
						t.Fatalf("sql_mode %s with %s", mode, params)
					}
					users, err := repo.New[User, int64](e.Sessions())
					wantErrIs(t, "New", err, nil)
					searchLike(t, users, us)
				})
			}
		}
		// Combined with other conditions, and through Page.
		p, err := v.users.Page(ctx, repo.PageRequest{Limit: 2},
			repo.Where(repo.Or(repo.HasPrefix("name", "a"), repo.HasSuffix("name", "%"))), repo.Where(repo.Contains("name", "!")))
		wantErrIs(t, "Page", err, nil)
		if got := namesOf(us, idsOf(p.Items)); !slices.Equal(got, []string{"a!b", "a!!b"}) {
			t.Fatalf("Page gave %q", got)
		}
		p, err = v.users.Page(ctx, repo.PageRequest{Limit: 2, After: p.Next},
			repo.Where(repo.Or(repo.HasPrefix("name", "a"), repo.HasSuffix("name", "%"))), repo.Where(repo.Contains("name", "!")))
		wantErrIs(t, "Page 2", err, nil)
		if got := namesOf(us, idsOf(p.Items)); !slices.Equal(got, []string{"!%"}) || p.Next != "" {
			t.Fatalf("Page 2 gave %q, next %q", got, p.Next)
		}
		for _, col := range []string{"nope", `name" LIKE '%' --`, "Name", ""} {
			_, err := v.users.Find(ctx, repo.Where(repo.Contains(col, "x")))
			wantErrIs(t, fmt.Sprintf("Contains(%q)", col), err, repo.ErrUnknownColumn)
		}
		fxtest.RequireNoLeaks(t, v.e)
	})
}

// searchLike runs every helper with every needle over the users us.
func searchLike(t *testing.T, users *repo.Repository[User, int64], us []User) {
	t.Helper()
	ctx := testContext(t)
	helpers := []struct {
		name  string
		cond  func(column, s string) repo.Cond
		match func(s, sub string) bool
	}{
		{"Contains", repo.Contains, strings.Contains},
		{"HasPrefix", repo.HasPrefix, strings.HasPrefix},
		{"HasSuffix", repo.HasSuffix, strings.HasSuffix},
	}
	for _, h := range helpers {
		for _, needle := range likeNeedles {
			var want []int64
			for _, u := range us {
				if h.match(u.Name, needle) {
					want = append(want, u.ID)
				}
			}
			found, err := users.Find(ctx, repo.Where(h.cond("name", needle)))
			wantErrIs(t, fmt.Sprintf("%s(%q)", h.name, needle), err, nil)
			if got := idsOf(found); !slices.Equal(got, want) {
				t.Errorf("%s(name, %q) matched %q, want %q", h.name, needle, namesOf(us, got), namesOf(us, want))
			}
			// A nullable column: NULL never matches.
			want = want[:0]
			for _, u := range us {
				if u.Nick != nil && h.match(*u.Nick, needle) {
					want = append(want, u.ID)
				}
			}
			n, err := users.Count(ctx, repo.Where(h.cond("nick", needle)))
			wantErrIs(t, fmt.Sprintf("Count %s(nick, %q)", h.name, needle), err, nil)
			if int(n) != len(want) {
				t.Errorf("%s(nick, %q) counted %d, want %d", h.name, needle, n, len(want))
			}
		}
	}
}

// namesOf returns the names of the users with the given keys.
func namesOf(us []User, ids []int64) []string {
	out := []string{}
	for _, id := range ids {
		for _, u := range us {
			if u.ID == id {
				out = append(out, u.Name)
			}
		}
	}
	return out
}

func TestContainsSQL(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		v := setup(t, cfg)
		for _, tt := range []struct {
			cond repo.Cond
			arg  string
		}{
			{repo.Contains("name", `50%_off!\`), `%50!%!_off!!\%`},
			{repo.HasPrefix("name", "a_b"), "a!_b%"},
			{repo.HasSuffix("name", "!"), "%!!"},
			{repo.Contains("name", ""), "%%"},
			{repo.HasPrefix("name", "plain"), "plain%"},
		} {
			text, args, err := v.users.BuildFind(repo.Where(tt.cond))
			wantErrIs(t, "BuildFind", err, nil)
			if !strings.Contains(text, " LIKE ") || !strings.Contains(text, ` ESCAPE '!'`) || len(args) != 1 || args[0] != tt.arg {
				t.Fatalf("%s %q, want LIKE %q ESCAPE '!'", text, args, tt.arg)
			}
		}
		_, _, err := v.users.BuildFind(repo.Where(repo.HasSuffix("nope", "x")))
		if !errors.Is(err, repo.ErrUnknownColumn) {
			t.Fatalf("unknown column: %v", err)
		}
	})
}
