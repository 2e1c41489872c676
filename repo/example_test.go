package repo_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/url"
	"strconv"
	"time"

	"go.uber.org/fx"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/dbfx/sqlite3"
	"github.com/enginekit/enginekit/repo"
)

// Note is the entity of the examples: table "notes".
type Note struct {
	ID      int64     `db:"id,pk,auto"`
	Title   string    `db:"title"`
	Stars   int       `db:"stars"`
	Version int64     `db:"version,version"`
	Created time.Time `db:"created_at,created"`
}

const notesDDL = `CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT NOT NULL UNIQUE,
	stars INTEGER NOT NULL, version INTEGER NOT NULL, created_at TIMESTAMP NOT NULL)`

func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	engine, err := dbfx.Open(ctx, dbfx.Config{DSN: ":memory:"}, dbfx.WithDriver(sqlite3.Driver()))
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Close(ctx)
	if _, err := engine.DB().ExecContext(ctx, notesDDL); err != nil {
		log.Fatal(err)
	}
	notes, err := repo.New[Note, int64](engine.Sessions())
	if err != nil {
		log.Fatal(err)
	}

	// Insert fills the generated key and the version.
	n := Note{Title: "engines start with the app", Stars: 3}
	if err := notes.Insert(ctx, &n); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("inserted note %d, version %d\n", n.ID, n.Version)

	// InsertMany and the other calls join the transaction in ctx.
	err = engine.Sessions().Tx(ctx, func(ctx context.Context) error {
		return notes.InsertMany(ctx, []Note{
			{Title: "scopes travel in ctx", Stars: 5},
			{Title: "repositories join them", Stars: 4},
			{Title: "cursors page by key", Stars: 5},
		})
	})
	if err != nil {
		log.Fatal(err)
	}

	// Conditions name columns; values are bound. The key breaks ties, in
	// the direction of the last OrderBy.
	best, err := notes.Find(ctx, repo.Where(repo.Gte("stars", 4)), repo.OrderBy("stars", true))
	if err != nil {
		log.Fatal(err)
	}
	for _, b := range best {
		fmt.Printf("%d stars: %s\n", b.Stars, b.Title)
	}
	_, err = notes.Find(ctx, repo.Where(repo.Eq("stars; DROP TABLE notes", 1)))
	fmt.Println("unknown column:", errors.Is(err, repo.ErrUnknownColumn))

	// Optimistic locking: the second writer of version 1 loses.
	a, _ := notes.Get(ctx, n.ID)
	b := a
	a.Stars = 4
	fmt.Println("first update:", notes.Update(ctx, &a), "now version", a.Version)
	b.Stars = 1
	fmt.Println("second update is stale:", errors.Is(notes.Update(ctx, &b), repo.ErrStale))

	// Keyset pages of two.
	req := repo.PageRequest{Limit: 2}
	for {
		page, err := notes.Page(ctx, req)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("page:", len(page.Items), "notes, first", page.Items[0].ID)
		if page.Next == "" {
			break
		}
		req.After = page.Next
	}

	if err := notes.Delete(ctx, n.ID); err != nil {
		log.Fatal(err)
	}
	_, err = notes.Get(ctx, n.ID)
	fmt.Println("deleted:", errors.Is(err, repo.ErrNotFound))
	// Output:
	// inserted note 1, version 1
	// 5 stars: cursors page by key
	// 5 stars: scopes travel in ctx
	// 4 stars: repositories join them
	// unknown column: true
	// first update: <nil> now version 2
	// second update is stale: true
	// page: 2 notes, first 1
	// page: 2 notes, first 3
	// deleted: true
}

// A repository in an Fx app: dbfx.ProvideRepository puts it in the graph,
// where constructors take it like any dependency.
func Example_fx() {
	type handler struct{ notes *repo.Repository[Note, int64] }
	app := fx.New(
		fx.NopLogger,
		fx.Supply(dbfx.Config{DSN: ":memory:"}),
		dbfx.Module, sqlite3.Module,
		dbfx.ProvideRepository[Note, int64](),
		fx.Provide(func(notes *repo.Repository[Note, int64]) *handler { return &handler{notes} }),
		fx.Invoke(func(lc fx.Lifecycle, e *dbfx.Engine, h *handler) {
			lc.Append(fx.StartHook(func(ctx context.Context) error {
				// Runs after the engine's own OnStart: the database answers.
				if _, err := e.DB().ExecContext(ctx, notesDDL); err != nil {
					return err
				}
				n := Note{Title: "provided by Fx", Stars: 5}
				if err := h.notes.Insert(ctx, &n); err != nil {
					return err
				}
				count, err := h.notes.Count(ctx)
				fmt.Println("notes in", h.notes.Table()+":", count)
				return err
			}))
		}),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		log.Fatal(err)
	}
	if err := app.Stop(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// notes in notes: 1
}

// A search and its pages straight from a query string: the search string
// is matched literally, the page size is clamped, and the cursor is signed
// and bound to the search.
func Example_clientInput() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	engine, err := dbfx.Open(ctx, dbfx.Config{DSN: ":memory:"}, dbfx.WithDriver(sqlite3.Driver()))
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Close(ctx)
	if _, err := engine.DB().ExecContext(ctx, notesDDL); err != nil {
		log.Fatal(err)
	}
	key := []byte("a secret of 32 bytes, not this 1") // from the service's secrets
	notes, err := repo.New[Note, int64](engine.Sessions(), repo.SignCursors(key), repo.MaxPageLimit(2))
	if err != nil {
		log.Fatal(err)
	}
	err = notes.InsertMany(ctx, []Note{
		{Title: "100% done"}, {Title: "1000 things"}, {Title: "50% off"}, {Title: "100% sure"}, {Title: "100%"},
	})
	if err != nil {
		log.Fatal(err)
	}

	query := url.Values{"q": {"100%"}, "limit": {"9223372036854775807"}}
	limit, _ := strconv.Atoi(query.Get("limit"))
	search := repo.Where(repo.Contains("title", query.Get("q")))
	req := repo.PageRequest{Limit: limit, After: query.Get("after")}
	for {
		page, err := notes.Page(ctx, req, search)
		if err != nil {
			log.Fatal(err)
		}
		var titles []string
		for _, n := range page.Items {
			titles = append(titles, n.Title)
		}
		fmt.Printf("%q\n", titles)
		if page.Next == "" {
			break
		}
		req.After = page.Next
	}
	_, err = notes.Page(ctx, req, repo.Where(repo.Contains("title", "50%")))
	fmt.Println("the cursor with another search:", errors.Is(err, repo.ErrInvalidCursor))
	// Output:
	// ["100% done" "100% sure"]
	// ["100%"]
	// the cursor with another search: true
}
