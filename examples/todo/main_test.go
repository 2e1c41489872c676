package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/fx"
	"go.uber.org/goleak"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testTimeout bounds every test: no request may wait longer.
const testTimeout = 2 * time.Minute

func testContext(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	tb.Cleanup(cancel)
	return ctx
}

// service is a started app on one database with an httptest server over
// its handler.
type service struct {
	t      *testing.T
	ctx    context.Context
	url    string
	client *http.Client
	engine *dbfx.Engine
}

// start builds the app as main does, but for the configuration and the
// listener: fxtest.New adds dbfx.Module on cfg's private database.
func start(t *testing.T, cfg dbfx.Config, opts ...fx.Option) *service {
	t.Helper()
	var (
		h http.Handler
		e *dbfx.Engine
	)
	app := fxtest.New(t, fx.Supply(cfg), Module(), fx.Populate(&h, &e), fx.Options(opts...))
	app.RequireStart()
	// Cleanups run last first: the server closes, the engine must have
	// nothing in use, then fxtest stops the app.
	t.Cleanup(func() { fxtest.RequireNoLeaks(t, e) })
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	client := srv.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	return &service{t: t, ctx: testContext(t), url: srv.URL, client: client, engine: e}
}

// response is an answer read in full.
type response struct {
	code   int
	header http.Header
	body   []byte
}

func (r *response) String() string { return fmt.Sprintf("%d %s", r.code, bytes.TrimSpace(r.body)) }

// call sends body (JSON-encoded unless a string or nil) with the JSON
// content type. Safe from many goroutines.
func (s *service) call(method, path string, body any) (*response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(s.ctx, method, s.url+path, rd)
	if err != nil {
		return nil, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	return &response{code: res.StatusCode, header: res.Header, body: raw}, nil
}

// must is call that fails the test on a transport error or a status other
// than want, and decodes the body into out when out is not nil.
func (s *service) must(want int, method, path string, body, out any) *response {
	s.t.Helper()
	res, err := s.call(method, path, body)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	if res.code != want {
		s.t.Fatalf("%s %s = %s, want %d", method, path, res, want)
	}
	if out != nil {
		if err := json.Unmarshal(res.body, out); err != nil {
			s.t.Fatalf("%s %s: decode %s: %v", method, path, res.body, err)
		}
	}
	return res
}

// list creates a list.
func (s *service) list(name string) List {
	s.t.Helper()
	var l List
	s.must(http.StatusCreated, "POST", "/lists", map[string]any{"name": name}, &l)
	return l
}

// todo creates a todo.
func (s *service) todo(list int64, title string) Todo {
	s.t.Helper()
	var td Todo
	s.must(http.StatusCreated, "POST", "/todos", map[string]any{"list_id": list, "title": title}, &td)
	return td
}

// all pages through GET path (which may hold a query) with pages of limit.
func all[T any](s *service, path string, limit int) []T {
	s.t.Helper()
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	var items []T
	next := ""
	for pages := 0; ; pages++ {
		if pages > 10000 {
			s.t.Fatalf("paging through %s does not end", path)
		}
		var p struct {
			Items []T     `json:"items"`
			Next  *string `json:"next"`
		}
		s.must(http.StatusOK, "GET", fmt.Sprintf("%s%slimit=%d&after=%s", path, sep, limit, next), nil, &p)
		items = append(items, p.Items...)
		if p.Next == nil {
			return items
		}
		if *p.Next == "" || len(p.Items) != limit {
			s.t.Fatalf("page %d of %s: %d items and next %q", pages, path, len(p.Items), *p.Next)
		}
		next = *p.Next
	}
}

// checkCounters fails the test unless every list's counters equal what
// paging through its todos finds, and returns the todos of all lists.
func (s *service) checkCounters() map[int64]Todo {
	s.t.Helper()
	todos := map[int64]Todo{}
	for _, l := range all[List](s, "/lists", 7) {
		var n, done int64
		for _, td := range all[Todo](s, fmt.Sprintf("/todos?list=%d", l.ID), 13) {
			if td.ListID != l.ID {
				s.t.Fatalf("GET /todos?list=%d returned todo %+v", l.ID, td)
			}
			if _, dup := todos[td.ID]; dup {
				s.t.Fatalf("todo %d listed twice", td.ID)
			}
			todos[td.ID] = td
			n++
			if td.Done {
				done++
			}
		}
		if l.TodoCount != n || l.DoneCount != done {
			s.t.Fatalf("list %d %q counts %d todos, %d done; it holds %d, %d done", l.ID, l.Name, l.TodoCount, l.DoneCount, n, done)
		}
	}
	if total := len(all[Todo](s, "/todos", 50)); total != len(todos) {
		s.t.Fatalf("GET /todos pages through %d todos, the lists hold %d", total, len(todos))
	}
	return todos
}
