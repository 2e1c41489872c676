package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/enginekit/enginekit/repo"
	"github.com/enginekit/enginekit/session"
)

// List is a named list of todos with counters kept by the service in the
// same transactions that change its todos.
type List struct {
	ID        int64     `db:"id,pk,auto" json:"id"`
	Name      string    `db:"name" json:"name"`
	TodoCount int64     `db:"todo_count" json:"todo_count"` // changed only by count, in the database
	DoneCount int64     `db:"done_count" json:"done_count"`
	Created   time.Time `db:"created_at,created" json:"created_at"`
}

// Todo is one item of a list. Version is its optimistic lock: every write
// increments it, and a client that updates a todo sends the version it read.
type Todo struct {
	ID      int64     `db:"id,pk,auto" json:"id"`
	ListID  int64     `db:"list_id" json:"list_id"`
	Title   string    `db:"title" json:"title"`
	Done    bool      `db:"done" json:"done"`
	Version int64     `db:"version,version" json:"version"`
	Created time.Time `db:"created_at,created" json:"created_at"`
	Updated time.Time `db:"updated_at,updated" json:"updated_at"`
}

// Errors of the service, matched with errors.Is; the handlers turn them
// into statuses. Their messages hold only ids and names the client sent.
var (
	// ErrNotFound: the todo or list named by the request's path is absent.
	ErrNotFound = errors.New("not found")
	// ErrNoSuchList: a write names a list (in its body) that does not exist.
	ErrNoSuchList = errors.New("does not exist")
	// ErrExists: a list of that name exists already.
	ErrExists = errors.New("exists already")
	// ErrStale: the todo is no longer at the version the client read.
	ErrStale = errors.New("was changed by another request: read it again and retry with its new version")
)

// errRaced: the todo changed between the read and the write of a
// transaction that did not pin a version. The transaction is run again.
var errRaced = errors.New("todo changed during the transaction")

// writeRetry is the retry policy of the service's transactions: more
// attempts than the default three, for a todo that many requests move at
// once without pinning a version (errRaced, by RetryOn) and for what the
// database aborts anyway (a deadlock it sees, SQLite busy).
func writeRetry(label string, also func(error) bool) []session.TxOption {
	return []session.TxOption{
		session.Label(label),
		session.Retry(session.RetryPolicy{
			MaxAttempts: 10,
			BaseDelay:   2 * time.Millisecond,
			MaxDelay:    100 * time.Millisecond,
			RetryOn:     also,
		}),
	}
}

func isRaced(err error) bool { return errors.Is(err, errRaced) }

// Service holds the todo operations. Each write is one transaction: a
// todo and the counters of its lists change together or not at all.
//
// Lock order. A write reads its todo without locking it, then locks the
// rows of the lists it will count in (repo.ForUpdate), in id order, then
// writes the todo at the version it read (which fails when another
// request changed it meanwhile), then changes the counters in the database
// (repo.Incr), never by writing back a value read. Every transaction takes lists
// before todos and lists in id order, so none waits for another in a
// cycle: moves between two lists in opposite directions would deadlock if
// each took its source list first, and on PostgreSQL each deadlock costs
// a second (deadlock_timeout) before one of them is aborted and retried.
// Counters go down only once the todo is written at the version read, so
// a stale read can never push one below zero.
type Service struct {
	sessions *session.Manager
	todos    *repo.Repository[Todo, int64]
	lists    *repo.Repository[List, int64]
}

// NewService returns the service over the repositories the Fx graph
// provides (dbfx.ProvideRepository).
func NewService(sessions *session.Manager, todos *repo.Repository[Todo, int64], lists *repo.Repository[List, int64]) *Service {
	return &Service{sessions: sessions, todos: todos, lists: lists}
}

// readOnly runs fn in a read-only transaction labelled label and returns
// its value. Read scopes go to the reader pool on SQLite (and to replicas,
// once dbfx has them) instead of queueing behind writes.
func readOnly[T any](ctx context.Context, m *session.Manager, label string, fn func(ctx context.Context) (T, error)) (T, error) {
	var out T
	err := m.ReadOnly(ctx, func(ctx context.Context) error {
		var err error
		out, err = fn(ctx)
		return err
	}, session.Label(label))
	return out, err
}

// CreateList adds a list; ErrExists when the name is taken.
func (s *Service) CreateList(ctx context.Context, name string) (List, error) {
	l := List{Name: name}
	if err := s.lists.Insert(ctx, &l); err != nil {
		if errors.Is(err, repo.ErrDuplicate) {
			return List{}, fmt.Errorf("list %q %w", name, ErrExists)
		}
		return List{}, err
	}
	return l, nil
}

// List returns the list with its counters.
func (s *Service) List(ctx context.Context, id int64) (List, error) {
	return readOnly(ctx, s.sessions, "get_list", func(ctx context.Context) (List, error) {
		l, err := s.lists.Get(ctx, id)
		if errors.Is(err, repo.ErrNotFound) {
			return l, fmt.Errorf("list %d %w", id, ErrNotFound)
		}
		return l, err
	})
}

// Lists returns a page of lists in id order.
func (s *Service) Lists(ctx context.Context, p repo.PageRequest) (repo.Page[List], error) {
	return readOnly(ctx, s.sessions, "list_lists", func(ctx context.Context) (repo.Page[List], error) {
		return s.lists.Page(ctx, p)
	})
}

// Todo returns a todo.
func (s *Service) Todo(ctx context.Context, id int64) (Todo, error) {
	return readOnly(ctx, s.sessions, "get_todo", func(ctx context.Context) (Todo, error) {
		return s.get(ctx, id)
	})
}

// Todos returns a page of todos in id order, of one list when list > 0.
func (s *Service) Todos(ctx context.Context, p repo.PageRequest, list int64) (repo.Page[Todo], error) {
	var where []repo.Clause
	if list > 0 {
		where = append(where, repo.Where(repo.Eq("list_id", list)))
	}
	return readOnly(ctx, s.sessions, "list_todos", func(ctx context.Context) (repo.Page[Todo], error) {
		return s.todos.Page(ctx, p, where...)
	})
}

// CreateTodo adds a todo to a list and counts it there.
func (s *Service) CreateTodo(ctx context.Context, list int64, title string) (Todo, error) {
	return session.Tx(ctx, s.sessions, func(ctx context.Context) (Todo, error) {
		// The list first (lists before todos); a count going up needs no
		// check of the todo, so the increment itself is the lock: an
		// UPDATE locks the row it changes until the transaction ends.
		if err := s.count(ctx, list, 1, 0); err != nil {
			return Todo{}, err
		}
		t := Todo{ListID: list, Title: title}
		err := s.todos.Insert(ctx, &t)
		return t, err
	}, writeRetry("create_todo", nil)...)
}

// UpdateTodo sets the title and done of the todo at version; ErrStale when
// it is at another one.
func (s *Service) UpdateTodo(ctx context.Context, id, version int64, title string, done bool) (Todo, error) {
	return session.Tx(ctx, s.sessions, func(ctx context.Context) (Todo, error) {
		t, err := s.get(ctx, id)
		if err != nil {
			return t, err
		}
		if t.Version != version {
			return t, fmt.Errorf("todo %d %w", id, ErrStale)
		}
		wasDone := t.Done
		if done != wasDone {
			if err := s.lock(ctx, t.ListID); err != nil {
				return t, err
			}
		}
		t.Title, t.Done = title, done
		if err := s.update(ctx, &t, false); err != nil {
			return t, err
		}
		// The todo was at the version read: its list and done are the
		// ones the counters hold.
		if done != wasDone {
			err = s.count(ctx, t.ListID, 0, delta(done))
		}
		return t, err
	}, writeRetry("update_todo", nil)...)
}

// MoveTodo moves a todo to another list, and its counts with it. With a
// version (> 0) it moves the todo only at that version (ErrStale
// otherwise); without one it moves the latest, running the transaction
// again when another request changes the todo meanwhile.
func (s *Service) MoveTodo(ctx context.Context, id, to, version int64) (Todo, error) {
	return session.Tx(ctx, s.sessions, func(ctx context.Context) (Todo, error) {
		t, err := s.get(ctx, id)
		if err != nil {
			return t, err
		}
		if version > 0 && t.Version != version {
			return t, fmt.Errorf("todo %d %w", id, ErrStale)
		}
		from := t.ListID
		if from == to {
			return t, s.exists(ctx, to)
		}
		if err := s.lock(ctx, from, to); err != nil {
			return t, err
		}
		t.ListID = to
		if err := s.update(ctx, &t, version == 0); err != nil {
			return t, err
		}
		done := ones(t.Done)
		if err := s.count(ctx, from, -1, -done); err != nil {
			return t, err
		}
		return t, s.count(ctx, to, 1, done)
	}, writeRetry("move_todo", isRaced)...)
}

// DeleteTodo removes a todo and its counts.
func (s *Service) DeleteTodo(ctx context.Context, id int64) error {
	return s.sessions.Tx(ctx, func(ctx context.Context) error {
		t, err := s.get(ctx, id)
		if err != nil {
			return err
		}
		if err := s.lock(ctx, t.ListID); err != nil {
			return err
		}
		// At the version read, so that a todo moved meanwhile is not
		// uncounted from the list it left: the transaction runs again.
		switch err := s.todos.DeleteVersion(ctx, &t); {
		case errors.Is(err, repo.ErrStale):
			return errRaced
		case errors.Is(err, repo.ErrNotFound):
			return fmt.Errorf("todo %d %w", id, ErrNotFound)
		case err != nil:
			return err
		}
		return s.count(ctx, t.ListID, -1, -ones(t.Done))
	}, writeRetry("delete_todo", isRaced)...)
}

// get reads a todo in the scope of ctx.
func (s *Service) get(ctx context.Context, id int64) (Todo, error) {
	t, err := s.todos.Get(ctx, id)
	if errors.Is(err, repo.ErrNotFound) {
		return t, fmt.Errorf("todo %d %w", id, ErrNotFound)
	}
	return t, err
}

// update writes t at its version. A todo changed meanwhile is errRaced
// when raced (the transaction is run again), else ErrStale.
func (s *Service) update(ctx context.Context, t *Todo, raced bool) error {
	err := s.todos.Update(ctx, t)
	switch {
	case errors.Is(err, repo.ErrStale) && raced:
		return errRaced
	case errors.Is(err, repo.ErrStale):
		return fmt.Errorf("todo %d %w", t.ID, ErrStale)
	case errors.Is(err, repo.ErrNotFound):
		return fmt.Errorf("todo %d %w", t.ID, ErrNotFound)
	}
	return err
}

// lock takes the rows of lists, in id order, until the transaction ends;
// ErrNoSuchList when one is absent. On SQLite ForUpdate adds nothing: the
// write transaction already keeps every other writer out.
func (s *Service) lock(ctx context.Context, lists ...int64) error {
	slices.Sort(lists)
	lists = slices.Compact(lists)
	ids := make([]any, len(lists))
	for i, id := range lists {
		ids[i] = id
	}
	got, err := s.lists.Find(ctx, repo.Where(repo.In("id", ids...)), repo.OrderBy("id", false), repo.ForUpdate())
	if err != nil {
		return err
	}
	for i, id := range lists {
		if i >= len(got) || got[i].ID != id {
			return fmt.Errorf("list %d %w", id, ErrNoSuchList)
		}
	}
	return nil
}

// count adds todos and done to the counters of a list, in the database
// (todo_count = todo_count + todos), so that no count read before is
// written back; ErrNoSuchList when there is no such list. Only non-zero
// deltas are sent: every row the statement matches then changes, which is
// what MySQL counts.
func (s *Service) count(ctx context.Context, list, todos, done int64) error {
	var set []repo.Assignment
	if todos != 0 {
		set = append(set, repo.Incr("todo_count", todos))
	}
	if done != 0 {
		set = append(set, repo.Incr("done_count", done))
	}
	if len(set) == 0 {
		return s.exists(ctx, list)
	}
	n, err := s.lists.UpdateWhere(ctx, set, repo.Where(repo.Eq("id", list)))
	if err != nil {
		return fmt.Errorf("list %d: %w", list, err)
	}
	if n == 0 {
		return fmt.Errorf("list %d %w", list, ErrNoSuchList)
	}
	return nil
}

// exists returns ErrNoSuchList when the list is absent.
func (s *Service) exists(ctx context.Context, list int64) error {
	ok, err := s.lists.Exists(ctx, repo.Where(repo.Eq("id", list)))
	if err == nil && !ok {
		err = fmt.Errorf("list %d %w", list, ErrNoSuchList)
	}
	return err
}

// delta is the change of a done counter when a todo becomes done (or not).
func delta(done bool) int64 {
	if done {
		return 1
	}
	return -1
}

// ones is 1 for a done todo, 0 for another: what it adds to done_count.
func ones(done bool) int64 {
	if done {
		return 1
	}
	return 0
}
