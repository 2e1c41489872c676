package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
	"github.com/enginekit/enginekit/session"
)

func TestEndpoints(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		s := start(t, cfg)
		home, work := s.list("home"), s.list("work")
		s.must(http.StatusConflict, "POST", "/lists", `{"name":"home"}`, nil)
		s.must(http.StatusNotFound, "GET", "/lists/99", nil, nil)

		// Create, with a title any database must keep as it is.
		const title = "café ✓ 🚀 «quoted» 'single' \"double\""
		res := s.must(http.StatusCreated, "POST", "/todos", map[string]any{"list_id": home.ID, "title": "  " + title + "  "}, nil)
		var milk Todo
		if err := json.Unmarshal(res.body, &milk); err != nil {
			t.Fatal(err)
		}
		if milk.ID <= 0 || milk.ListID != home.ID || milk.Title != title || milk.Done || milk.Version != 1 || milk.Created.IsZero() {
			t.Fatalf("created %+v", milk)
		}
		if loc := res.header.Get("Location"); loc != fmt.Sprintf("/todos/%d", milk.ID) {
			t.Fatalf("Location %q", loc)
		}
		s.must(http.StatusUnprocessableEntity, "POST", "/todos", map[string]any{"list_id": 99, "title": "orphan"}, nil)

		// Read.
		var got Todo
		s.must(http.StatusOK, "GET", fmt.Sprintf("/todos/%d", milk.ID), nil, &got)
		if got != milk {
			t.Fatalf("GET returned %+v, want %+v", got, milk)
		}
		s.must(http.StatusNotFound, "GET", "/todos/99", nil, nil)
		var l List
		s.must(http.StatusOK, "GET", fmt.Sprintf("/lists/%d", home.ID), nil, &l)
		if l.Name != "home" || l.TodoCount != 1 || l.DoneCount != 0 {
			t.Fatalf("list %+v", l)
		}

		// Update at the version read; the same version again is stale.
		var done Todo
		s.must(http.StatusOK, "PUT", fmt.Sprintf("/todos/%d", milk.ID),
			map[string]any{"title": "buy oat milk", "done": true, "version": milk.Version}, &done)
		if done.Title != "buy oat milk" || !done.Done || done.Version != 2 || done.ListID != home.ID {
			t.Fatalf("updated %+v", done)
		}
		var conflict struct{ Error string }
		s.must(http.StatusConflict, "PUT", fmt.Sprintf("/todos/%d", milk.ID),
			map[string]any{"title": "lost update", "done": false, "version": milk.Version}, &conflict)
		if !strings.Contains(conflict.Error, "changed by another request") {
			t.Fatalf("409 body %+v", conflict)
		}
		s.must(http.StatusNotFound, "PUT", "/todos/99", map[string]any{"title": "x", "done": false, "version": 1}, nil)
		s.checkCounters()

		// Move between lists; with a version it must be the current one.
		var moved Todo
		s.must(http.StatusConflict, "POST", fmt.Sprintf("/todos/%d/move", milk.ID), map[string]any{"to_list": work.ID, "version": 1}, nil)
		s.must(http.StatusOK, "POST", fmt.Sprintf("/todos/%d/move", milk.ID), map[string]any{"to_list": work.ID, "version": 2}, &moved)
		if moved.ListID != work.ID || moved.Version != 3 || !moved.Done || moved.Title != "buy oat milk" {
			t.Fatalf("moved %+v", moved)
		}
		s.must(http.StatusOK, "POST", fmt.Sprintf("/todos/%d/move", milk.ID), map[string]any{"to_list": work.ID}, &moved)
		if moved.Version != 3 {
			t.Fatalf("a move to the list it is on changed it: %+v", moved)
		}
		s.must(http.StatusUnprocessableEntity, "POST", fmt.Sprintf("/todos/%d/move", milk.ID), map[string]any{"to_list": 99}, nil)
		s.must(http.StatusNotFound, "POST", "/todos/99/move", map[string]any{"to_list": home.ID}, nil)
		todos := s.checkCounters()
		if len(todos) != 1 || todos[milk.ID].ListID != work.ID {
			t.Fatalf("after the move: %+v", todos)
		}

		// Delete.
		other := s.todo(home.ID, "other")
		s.must(http.StatusNoContent, "DELETE", fmt.Sprintf("/todos/%d", milk.ID), nil, nil)
		s.must(http.StatusNotFound, "DELETE", fmt.Sprintf("/todos/%d", milk.ID), nil, nil)
		s.must(http.StatusNotFound, "GET", fmt.Sprintf("/todos/%d", milk.ID), nil, nil)
		todos = s.checkCounters()
		if len(todos) != 1 || todos[other.ID].Title != "other" {
			t.Fatalf("after the delete: %+v", todos)
		}
	})
}

func TestBadRequestsAreJSONErrors(t *testing.T) {
	long := strings.Repeat("é", maxTitle+1)
	tests := []struct {
		name        string
		method      string
		path        string
		body        string
		contentType string
		want        int
		wantError   string
	}{
		{"malformed JSON", "POST", "/todos", `{"list_id": 1, "title": `, "", 400, "not valid JSON"},
		{"syntax error", "POST", "/todos", `{"list_id": 1 "title": "x"}`, "", 400, "not valid JSON"},
		{"unknown field", "POST", "/todos", `{"list_id": 1, "title": "x", "owner": "me"}`, "", 400, `unknown field "owner"`},
		{"wrong type", "POST", "/todos", `{"list_id": "1", "title": "x"}`, "", 400, "list_id must be a JSON integer"},
		{"fraction id", "POST", "/todos", `{"list_id": 1.5, "title": "x"}`, "", 400, "list_id must be a JSON integer"},
		{"array body", "POST", "/todos", `[{"list_id": 1, "title": "x"}]`, "", 400, "must be a JSON object"},
		{"empty body", "POST", "/todos", ``, "", 400, "body is empty"},
		{"trailing data", "POST", "/todos", `{"list_id": 1, "title": "x"} {}`, "", 400, "nothing after it"},
		{"null body", "POST", "/todos", `null`, "", 400, "list_id is required"},
		{"missing title", "POST", "/todos", `{"list_id": 1}`, "", 400, "title is required"},
		{"empty title", "POST", "/todos", `{"list_id": 1, "title": ""}`, "", 400, "title must not be empty"},
		{"blank title", "POST", "/todos", `{"list_id": 1, "title": " \t "}`, "", 400, "title must not be empty"},
		{"title too long", "POST", "/todos", `{"list_id": 1, "title": "` + long + `"}`, "", 400, "at most 200 characters"},
		{"NUL in title", "POST", "/todos", `{"list_id": 1, "title": "a\u0000b"}`, "", 400, "control characters"},
		{"zero list", "POST", "/todos", `{"list_id": 0, "title": "x"}`, "", 400, "list_id must be a positive integer"},
		{"no content type", "POST", "/todos", `{"list_id": 1, "title": "x"}`, "-", 415, "Content-Type: application/json"},
		{"form content type", "POST", "/todos", `list_id=1&title=x`, "application/x-www-form-urlencoded", 415, "Content-Type"},
		{"body too large", "POST", "/todos", `{"list_id": 1, "title": "` + strings.Repeat("x", maxBody) + `"}`, "", 413, "larger than"},
		{"empty list name", "POST", "/lists", `{"name": ""}`, "", 400, "name must not be empty"},
		{"list name too long", "POST", "/lists", `{"name": "` + strings.Repeat("n", maxListName+1) + `"}`, "", 400, "at most 100"},
		{"id not a number", "GET", "/todos/abc", "", "", 400, "positive integer"},
		{"id zero", "GET", "/todos/0", "", "", 400, "positive integer"},
		{"id negative", "DELETE", "/todos/-1", "", "", 400, "positive integer"},
		{"id too large", "PUT", "/todos/99999999999999999999", `{"title": "x", "done": true, "version": 1}`, "", 400, "positive integer"},
		{"list id not a number", "GET", "/lists/x", "", "", 400, "positive integer"},
		{"put without version", "PUT", "/todos/1", `{"title": "x", "done": true}`, "", 400, "version is required"},
		{"put version zero", "PUT", "/todos/1", `{"title": "x", "done": true, "version": 0}`, "", 400, "version must be a positive integer"},
		{"put without done", "PUT", "/todos/1", `{"title": "x", "version": 1}`, "", 400, "done is required"},
		{"put done not bool", "PUT", "/todos/1", `{"title": "x", "done": "yes", "version": 1}`, "", 400, "done must be a JSON boolean"},
		{"move without target", "POST", "/todos/1/move", `{}`, "", 400, "to_list is required"},
		{"move bad version", "POST", "/todos/1/move", `{"to_list": 2, "version": -3}`, "", 400, "version must be a positive integer"},
		{"limit zero", "GET", "/todos?limit=0", "", "", 400, "limit must be an integer from 1 to 100"},
		{"limit too large", "GET", "/todos?limit=101", "", "", 400, "limit must be"},
		{"limit not a number", "GET", "/lists?limit=ten", "", "", 400, "limit must be"},
		{"forged cursor", "GET", "/todos?after=bm90IGEgY3Vyc29y", "", "", 400, "not a cursor"},
		{"cursor not base64", "GET", "/todos?after=%25%25%25", "", "", 400, "not a cursor"},
		{"bad list filter", "GET", "/todos?list=home", "", "", 400, "list must be a positive integer"},
	}
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		s := start(t, cfg)
		s.list("home")
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				req, err := http.NewRequestWithContext(s.ctx, tt.method, s.url+tt.path, strings.NewReader(tt.body))
				if err != nil {
					t.Fatal(err)
				}
				switch tt.contentType {
				case "":
					req.Header.Set("Content-Type", "application/json")
				case "-":
				default:
					req.Header.Set("Content-Type", tt.contentType)
				}
				res, err := s.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				var body struct{ Error string }
				if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
					t.Fatalf("%d: the body is not a JSON error: %v", res.StatusCode, err)
				}
				if res.StatusCode != tt.want || !strings.Contains(body.Error, tt.wantError) {
					t.Fatalf("%d %q, want %d with %q", res.StatusCode, body.Error, tt.want, tt.wantError)
				}
				if ct := res.Header.Get("Content-Type"); ct != "application/json" {
					t.Fatalf("Content-Type %q", ct)
				}
			})
		}
		// Nothing of the bad requests was written.
		if todos := s.checkCounters(); len(todos) != 0 {
			t.Fatalf("bad requests wrote %+v", todos)
		}
	})
}

func TestDatabaseErrorsDoNotLeak(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		s := start(t, cfg)
		home := s.list("home")
		// Break the schema under the running service.
		if _, err := s.engine.DB().ExecContext(s.ctx, "DROP TABLE todos"); err != nil {
			t.Fatal(err)
		}
		for _, r := range []struct{ method, path, body string }{
			{"GET", "/todos/1", ""},
			{"GET", "/todos", ""},
			{"POST", "/todos", fmt.Sprintf(`{"list_id": %d, "title": "x"}`, home.ID)},
		} {
			res, err := s.call(r.method, r.path, r.body)
			if err != nil {
				t.Fatal(err)
			}
			if res.code != http.StatusInternalServerError || strings.TrimSpace(string(res.body)) != `{"error":"internal error"}` {
				t.Fatalf("%s %s with the table gone: %s", r.method, r.path, res)
			}
		}
		// The failed create rolled back its count.
		var l List
		s.must(http.StatusOK, "GET", fmt.Sprintf("/lists/%d", home.ID), nil, &l)
		if l.TodoCount != 0 {
			t.Fatalf("list %+v", l)
		}
	})
}

func TestPagingThroughAllItems(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		s := start(t, cfg)
		a, b := s.list("a"), s.list("b")
		const n = 53
		want := map[int64]bool{}
		for i := range n {
			list := a.ID
			if i%3 == 0 {
				list = b.ID
			}
			want[s.todo(list, fmt.Sprintf("todo %d", i)).ID] = true
		}
		for _, limit := range []int{1, 10, 53, 100} {
			items := all[Todo](s, "/todos", limit)
			if len(items) != n {
				t.Fatalf("limit %d: %d items, want %d", limit, len(items), n)
			}
			for i, td := range items {
				if !want[td.ID] || (i > 0 && td.ID <= items[i-1].ID) {
					t.Fatalf("limit %d: item %d is todo %d, out of order or unknown", limit, i, td.ID)
				}
			}
		}
		// The default page size, and next absent on the last page.
		var p struct {
			Items []Todo
			Next  *string
		}
		s.must(http.StatusOK, "GET", "/todos", nil, &p)
		if len(p.Items) != defaultLimit || p.Next == nil {
			t.Fatalf("first page: %d items, next %v", len(p.Items), p.Next)
		}
		if got := len(all[Todo](s, fmt.Sprintf("/todos?list=%d", b.ID), 4)); got != (n+2)/3 {
			t.Fatalf("list b pages through %d todos, want %d", got, (n+2)/3)
		}
		s.checkCounters()
		// An empty listing is an empty array, not null.
		res := s.must(http.StatusOK, "GET", "/todos?list=999", nil, nil)
		if strings.TrimSpace(string(res.body)) != `{"items":[]}` {
			t.Fatalf("empty page %s", res.body)
		}
	})
}

func TestHealthzAndMetrics(t *testing.T) {
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		s := start(t, cfg)
		var health struct {
			Status  string
			Engines map[string]struct{ Status string }
		}
		s.must(http.StatusOK, "GET", "/healthz", nil, &health)
		if health.Status != "ok" || health.Engines["primary"].Status != "ok" {
			t.Fatalf("health %+v", health)
		}
		var live struct{ Status string }
		if s.must(http.StatusOK, "GET", "/livez", nil, &live); live.Status != "ok" {
			t.Fatalf("live %+v", live)
		}
		home := s.list("home")
		td := s.todo(home.ID, "metric")
		s.must(http.StatusOK, "GET", fmt.Sprintf("/todos/%d", td.ID), nil, nil)
		res := s.must(http.StatusOK, "GET", "/metrics", nil, nil)
		for _, want := range []string{
			`db_client_operation_duration_seconds_bucket{db_namespace=`,            // then the name of the database
			`,db_operation_name="INSERT",db_system_name="` + s.engine.Driver()[:4], // sqli, post, mysq
			`,engine="primary",error_type="",le="0.005"}`,
			`db_client_transactions_total{engine="primary",label="create_todo",outcome="committed"} 1`,
			`db_client_connection_max{engine="primary"}`,
			`http_server_request_duration_seconds_count{code="201",method="POST",route="POST /todos"} 1`,
			`http_server_request_duration_seconds_count{code="200",method="GET",route="GET /todos/{id}"} 1`,
			`go_goroutines `,
		} {
			if !strings.Contains(string(res.body), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
		// Statements are named by their operation (db_operation_name="SELECT"), never by their text.
		if strings.Contains(string(res.body), "FROM todos") || strings.Contains(string(res.body), "lists SET") {
			t.Error("/metrics holds SQL text")
		}
	})
}

func TestFailAnswersEachErrorClass(t *testing.T) {
	driverErr := errors.New(`pq: relation "todos" does not exist in SELECT * FROM todos WHERE password = 'x'`)
	tests := []struct {
		name      string
		give      error
		want      int
		wantBody  string
		wantRetry bool
	}{
		{"not found", fmt.Errorf("todo 7 %w", ErrNotFound), 404, `{"error":"todo 7 not found"}`, false},
		{"stale", fmt.Errorf("todo 7 %w", ErrStale), 409, `"todo 7 was changed by another request`, false},
		{"retries exhausted", &session.RetryError{Attempts: 10, Err: driverErr}, 503, `{"error":"too much contention, try again"}`, true},
		{"pool exhausted", fmt.Errorf("%w: no connection free within 30s", session.ErrAcquireTimeout), 503, `"the database is busy or shutting down`, true},
		{"stopping", session.ErrClosed, 503, `"the database is busy or shutting down`, true},
		{"anything else", fmt.Errorf("repo: get from todos: %w", driverErr), 500, `{"error":"internal error"}`, false},
	}
	h := NewHandlers(HandlersParams{Logger: zap.NewNop()})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.fail(rec, httptest.NewRequest(http.MethodGet, "/todos/7", nil), tt.give)
			body := strings.TrimSpace(rec.Body.String())
			if rec.Code != tt.want || !strings.Contains(body, tt.wantBody) {
				t.Fatalf("%d %s, want %d with %s", rec.Code, body, tt.want, tt.wantBody)
			}
			if (rec.Header().Get("Retry-After") != "") != tt.wantRetry {
				t.Fatalf("Retry-After %q", rec.Header().Get("Retry-After"))
			}
			if strings.Contains(body, "SELECT") || strings.Contains(body, "pq:") {
				t.Fatalf("the answer leaks the driver's error: %s", body)
			}
		})
	}
	t.Run("client gone", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		rec := httptest.NewRecorder()
		h.fail(rec, httptest.NewRequest(http.MethodGet, "/todos/7", nil).WithContext(ctx), context.Canceled)
		if rec.Body.Len() != 0 {
			t.Fatalf("answered a request whose client has gone: %s", rec.Body)
		}
	})
}
