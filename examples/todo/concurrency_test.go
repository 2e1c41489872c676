package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/enginekit/enginekit/dbfx"
	"github.com/enginekit/enginekit/fxtest"
)

// TestConcurrentClients runs 50 clients at once. Each creates todos of its
// own, updates, moves and deletes them; toggles todos that all clients
// share, answering a 409 the way a client should: read the todo again and
// retry with its new version; and moves todos that all clients move
// without a version, which the service retries when they race. No request
// may fail otherwise, and at the end every write is there: each client's
// todos as it left them, each shared todo at the version its successful
// updates made, and every list's counters equal to the todos it holds.
func TestConcurrentClients(t *testing.T) {
	const (
		clients      = 50
		ownTodos     = 4
		sharedTodos  = 5
		sharedWrites = 4 // updates of shared todos per client
		roaming      = 3 // todos every client moves
	)
	fxtest.Each(t, func(t *testing.T, cfg dbfx.Config) {
		s := start(t, cfg)
		lists := []List{s.list("inbox"), s.list("work"), s.list("home")}
		shared := make([]Todo, sharedTodos)
		for i := range shared {
			shared[i] = s.todo(lists[0].ID, fmt.Sprintf("shared %d", i))
		}
		roamers := make([]Todo, roaming)
		for i := range roamers {
			roamers[i] = s.todo(lists[i%len(lists)].ID, fmt.Sprintf("roaming %d", i))
		}
		var (
			sharedOK  = make([]atomic.Int64, sharedTodos) // successful updates per shared todo
			conflicts atomic.Int64                        // 409s answered by re-reading
			mu        sync.Mutex
			kept      = map[int64]Todo{} // each client's todos as it left them
			wg        sync.WaitGroup
			errs      = make(chan error, clients)
		)
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cl := &client{s: s, conflicts: &conflicts}
				rng := rand.New(rand.NewPCG(uint64(c), 7))
				mine, err := cl.run(c, rng, lists, shared, roamers, sharedWrites, ownTodos, sharedOK)
				if err != nil {
					errs <- fmt.Errorf("client %d: %w", c, err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				for _, td := range mine {
					kept[td.ID] = td
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if t.Failed() {
			return
		}

		todos := s.checkCounters()
		if want := sharedTodos + roaming + clients*(ownTodos-1); len(todos) != want {
			t.Fatalf("%d todos, want %d", len(todos), want)
		}
		for id, want := range kept {
			got, ok := todos[id]
			if !ok || got.Title != want.Title || got.Done != want.Done || got.ListID != want.ListID || got.Version != want.Version {
				t.Fatalf("todo %d is %+v, its client left it %+v", id, got, want)
			}
		}
		for i, sh := range shared {
			got := todos[sh.ID]
			if want := 1 + sharedOK[i].Load(); got.Version != want {
				t.Fatalf("shared todo %d at version %d after %d updates: a write was lost", sh.ID, got.Version, want-1)
			}
		}
		var sum int64
		for i := range sharedOK {
			sum += sharedOK[i].Load()
		}
		if sum != clients*sharedWrites {
			t.Fatalf("%d shared updates succeeded, want %d", sum, clients*sharedWrites)
		}
		t.Logf("%d conflicts answered by re-reading; transaction retries: %s", conflicts.Load(), retries(s))
	})
}

// client is one of the concurrent clients: it may not call t.Fatal, so it
// returns errors.
type client struct {
	s         *service
	conflicts *atomic.Int64
}

// run is a client's session. It returns its own todos as it left them.
func (c *client) run(id int, rng *rand.Rand, lists []List, shared, roamers []Todo, sharedWrites, own int, sharedOK []atomic.Int64) ([]Todo, error) {
	var mine []Todo
	for j := range own {
		var td Todo
		list := lists[rng.IntN(len(lists))].ID
		if err := c.expect(http.StatusCreated, "POST", "/todos", map[string]any{"list_id": list, "title": fmt.Sprintf("client %d todo %d", id, j)}, &td); err != nil {
			return nil, err
		}
		mine = append(mine, td)
	}
	for round := range 2 {
		for j := range mine {
			// Update at the version the client holds: no one else writes
			// its todos, so this must not conflict.
			td := &mine[j]
			body := map[string]any{"title": fmt.Sprintf("client %d todo %d round %d", id, j, round), "done": rng.IntN(2) == 0, "version": td.Version}
			if err := c.expect(http.StatusOK, "PUT", fmt.Sprintf("/todos/%d", td.ID), body, td); err != nil {
				return nil, err
			}
			// Move it to another list, without pinning a version.
			to := lists[(indexOf(lists, td.ListID)+1+rng.IntN(len(lists)-1))%len(lists)].ID
			if err := c.expect(http.StatusOK, "POST", fmt.Sprintf("/todos/%d/move", td.ID), map[string]any{"to_list": to}, td); err != nil {
				return nil, err
			}
			if td.ListID != to {
				return nil, fmt.Errorf("todo %d moved to %d, want %d", td.ID, td.ListID, to)
			}
		}
		// Toggle shared todos, retrying on conflict as a client must.
		for k := range sharedWrites / 2 {
			i := (id + round*7 + k) % len(shared)
			if err := c.toggle(shared[i].ID, id); err != nil {
				return nil, err
			}
			sharedOK[i].Add(1)
		}
		// Move the roaming todos, racing the other clients.
		for _, r := range roamers {
			var moved Todo
			to := lists[rng.IntN(len(lists))].ID
			if err := c.expect(http.StatusOK, "POST", fmt.Sprintf("/todos/%d/move", r.ID), map[string]any{"to_list": to}, &moved); err != nil {
				return nil, err
			}
			if moved.ListID != to {
				return nil, fmt.Errorf("roaming todo %d moved to %d, want %d", r.ID, moved.ListID, to)
			}
		}
	}
	last := mine[len(mine)-1]
	if err := c.expect(http.StatusNoContent, "DELETE", fmt.Sprintf("/todos/%d", last.ID), nil, nil); err != nil {
		return nil, err
	}
	return mine[:len(mine)-1], nil
}

// toggle flips the done of a todo others write too: read it, write at the
// version read, and on 409 read it again.
func (c *client) toggle(id int64, by int) error {
	for attempt := 0; attempt < 1000; attempt++ {
		var cur Todo
		if err := c.expect(http.StatusOK, "GET", fmt.Sprintf("/todos/%d", id), nil, &cur); err != nil {
			return err
		}
		res, err := c.s.call("PUT", fmt.Sprintf("/todos/%d", id), map[string]any{
			"title": fmt.Sprintf("toggled by client %d", by), "done": !cur.Done, "version": cur.Version})
		switch {
		case err != nil:
			return err
		case res.code == http.StatusOK:
			return nil
		case res.code == http.StatusConflict:
			c.conflicts.Add(1)
		default:
			return fmt.Errorf("PUT /todos/%d = %s", id, res)
		}
	}
	return errors.New("a thousand conflicts in a row")
}

// expect sends a request and returns an error unless it answers want; it
// decodes the body into out when out is not nil.
func (c *client) expect(want int, method, path string, body, out any) error {
	res, err := c.s.call(method, path, body)
	if err != nil {
		return err
	}
	if res.code != want {
		return fmt.Errorf("%s %s = %s, want %d", method, path, res, want)
	}
	if out != nil {
		return json.Unmarshal(res.body, out)
	}
	return nil
}

func indexOf(lists []List, id int64) int {
	for i, l := range lists {
		if l.ID == id {
			return i
		}
	}
	return -1
}

var retryLine = regexp.MustCompile(`(?m)^db_client_transaction_retries_total\{engine="primary",label="(\w+)"\} (\d+)$`)

// retries reads the retry counters off /metrics.
func retries(s *service) string {
	res, err := s.call("GET", "/metrics", nil)
	if err != nil {
		return err.Error()
	}
	out := ""
	total := 0
	for _, m := range retryLine.FindAllStringSubmatch(string(res.body), -1) {
		n, _ := strconv.Atoi(m[2])
		total += n
		out += fmt.Sprintf(" %s=%d", m[1], n)
	}
	return strconv.Itoa(total) + out
}
