package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/enginekit/enginekit/repo"
	"github.com/enginekit/enginekit/session"
)

// Limits of the input.
const (
	maxBody      = 64 << 10 // bytes of a request body
	maxTitle     = 200      // characters of a todo's title (VARCHAR(200))
	maxListName  = 100      // characters of a list's name (VARCHAR(100))
	defaultLimit = 20       // todos or lists per page
	maxLimit     = 100
)

// Handlers serves the JSON API over the Service.
type Handlers struct {
	svc *Service
	log *zap.Logger
}

// HandlersParams are what NewHandlers takes from the Fx graph.
type HandlersParams struct {
	fx.In

	Service *Service
	Logger  *zap.Logger `optional:"true"`
}

// NewHandlers returns the handlers; without a logger in the graph they
// log nothing.
func NewHandlers(p HandlersParams) *Handlers {
	log := p.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &Handlers{svc: p.Service, log: log}
}

// Requests. Pointer fields tell a missing field from a zero one.
type (
	createListRequest struct {
		Name *string `json:"name"`
	}
	createTodoRequest struct {
		ListID *int64  `json:"list_id"`
		Title  *string `json:"title"`
	}
	updateTodoRequest struct {
		Title   *string `json:"title"`
		Done    *bool   `json:"done"`
		Version *int64  `json:"version"` // the version the client read
	}
	moveTodoRequest struct {
		ToList  *int64 `json:"to_list"`
		Version *int64 `json:"version"` // optional: move only at this version
	}
)

// page is the JSON of one page: next is absent on the last one.
type page[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next,omitempty"`
}

func newPage[T any](p repo.Page[T]) page[T] {
	if p.Items == nil {
		p.Items = []T{}
	}
	return page[T]{Items: p.Items, Next: p.Next}
}

func (h *Handlers) createList(w http.ResponseWriter, r *http.Request) {
	var req createListRequest
	if !h.decode(w, r, &req) {
		return
	}
	name, err := text("name", req.Name, maxListName)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	l, err := h.svc.CreateList(r.Context(), name)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Location", fmt.Sprintf("/lists/%d", l.ID))
	writeJSON(w, http.StatusCreated, l)
}

func (h *Handlers) getList(w http.ResponseWriter, r *http.Request) {
	id, ok := h.pathID(w, r)
	if !ok {
		return
	}
	l, err := h.svc.List(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, l)
}

func (h *Handlers) listLists(w http.ResponseWriter, r *http.Request) {
	p, err := pageRequest(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	lists, err := h.svc.Lists(r.Context(), p)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newPage(lists))
}

func (h *Handlers) createTodo(w http.ResponseWriter, r *http.Request) {
	var req createTodoRequest
	if !h.decode(w, r, &req) {
		return
	}
	list, err := positive("list_id", req.ListID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	title, err := text("title", req.Title, maxTitle)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	t, err := h.svc.CreateTodo(r.Context(), list, title)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Location", fmt.Sprintf("/todos/%d", t.ID))
	writeJSON(w, http.StatusCreated, t)
}

func (h *Handlers) listTodos(w http.ResponseWriter, r *http.Request) {
	p, err := pageRequest(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var list int64
	if v := r.URL.Query().Get("list"); v != "" {
		if list, err = strconv.ParseInt(v, 10, 64); err != nil || list <= 0 {
			h.fail(w, r, badRequest("list must be a positive integer"))
			return
		}
	}
	todos, err := h.svc.Todos(r.Context(), p, list)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newPage(todos))
}

func (h *Handlers) getTodo(w http.ResponseWriter, r *http.Request) {
	id, ok := h.pathID(w, r)
	if !ok {
		return
	}
	t, err := h.svc.Todo(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (h *Handlers) updateTodo(w http.ResponseWriter, r *http.Request) {
	id, ok := h.pathID(w, r)
	if !ok {
		return
	}
	var req updateTodoRequest
	if !h.decode(w, r, &req) {
		return
	}
	title, err := text("title", req.Title, maxTitle)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if req.Done == nil {
		h.fail(w, r, badRequest("done is required"))
		return
	}
	version, err := positive("version", req.Version)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	t, err := h.svc.UpdateTodo(r.Context(), id, version, title, *req.Done)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (h *Handlers) moveTodo(w http.ResponseWriter, r *http.Request) {
	id, ok := h.pathID(w, r)
	if !ok {
		return
	}
	var req moveTodoRequest
	if !h.decode(w, r, &req) {
		return
	}
	to, err := positive("to_list", req.ToList)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var version int64
	if req.Version != nil {
		if version, err = positive("version", req.Version); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	t, err := h.svc.MoveTodo(r.Context(), id, to, version)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (h *Handlers) deleteTodo(w http.ResponseWriter, r *http.Request) {
	id, ok := h.pathID(w, r)
	if !ok {
		return
	}
	if err := h.svc.DeleteTodo(r.Context(), id); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// clientError is a request the client must change: its message is for
// the client.
type clientError struct {
	status int
	msg    string
}

func (e *clientError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &clientError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// fail answers err as a JSON error. Only the service's own errors and
// clientErrors reach the client with their message; anything else (a
// driver error with SQL in it, say) is logged and answered with a bare 500.
func (h *Handlers) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ce *clientError
	var re *session.RetryError
	switch {
	case errors.As(err, &ce):
		writeError(w, ce.status, ce.msg)
	case errors.As(err, &re):
		// Still deadlocked or raced after every attempt: the client may
		// try again later.
		h.log.Warn("transaction gave up", zap.String("route", r.Pattern), zap.Error(err))
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "too much contention, try again")
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrNoSuchList):
		writeError(w, http.StatusUnprocessableEntity, err.Error())
	case errors.Is(err, ErrStale), errors.Is(err, ErrExists):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, repo.ErrInvalidCursor):
		writeError(w, http.StatusBadRequest, "after is not a cursor of this listing")
	case r.Context().Err() != nil:
		// The client went away; there is no one to answer.
		h.log.Debug("request abandoned", zap.String("route", r.Pattern), zap.Error(err))
	case errors.Is(err, session.ErrAcquireTimeout), errors.Is(err, session.ErrClosed):
		h.log.Warn("database unavailable", zap.String("route", r.Pattern), zap.Error(err))
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "the database is busy or shutting down, try again")
	default:
		h.log.Error("request failed", zap.String("route", r.Pattern), zap.Error(err))
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

// decode reads the JSON object of the request body into dst, refusing
// unknown fields, trailing data and bodies over maxBody. It answers the
// request itself and returns false when the body is not acceptable.
func (h *Handlers) decode(w http.ResponseWriter, r *http.Request, dst any) bool {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		h.fail(w, r, &clientError{http.StatusUnsupportedMediaType, "the body must be JSON, sent with Content-Type: application/json"})
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if err == nil {
		var more json.RawMessage
		if dec.Decode(&more) != io.EOF {
			err = errTrailing
		}
	}
	if err != nil {
		h.fail(w, r, bodyError(err))
		return false
	}
	return true
}

// errTrailing: the body goes on after its JSON object.
var errTrailing = errors.New("trailing data")

// bodyError says what is wrong with a body the JSON decoder refused,
// without echoing it.
func bodyError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return &clientError{http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", maxBody)}
	case errors.Is(err, io.EOF):
		return badRequest("the body is empty: send a JSON object")
	case errors.As(err, &syntax):
		return badRequest("the body is not valid JSON (at byte %d)", syntax.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("the body is not valid JSON (it ends too soon)")
	case errors.As(err, &typ) && typ.Field != "":
		return badRequest("%s must be a JSON %s", typ.Field, jsonKind(typ.Type.Kind().String()))
	case errors.As(err, &typ):
		return badRequest("the body must be a JSON object")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return badRequest("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	case errors.Is(err, errTrailing):
		return badRequest("the body must hold one JSON object and nothing after it")
	}
	return badRequest("the body is not a valid request")
}

// jsonKind names a Go kind as JSON does.
func jsonKind(kind string) string {
	switch {
	case strings.HasPrefix(kind, "int"), strings.HasPrefix(kind, "uint"):
		return "integer"
	case strings.HasPrefix(kind, "float"):
		return "number"
	case kind == "bool":
		return "boolean"
	}
	return kind
}

// pathID returns the {id} of the path: a positive integer, else it
// answers 400 and returns false.
func (h *Handlers) pathID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		h.fail(w, r, badRequest("the id in the path must be a positive integer"))
		return 0, false
	}
	return id, true
}

// pageRequest reads ?limit= (1 to maxLimit) and ?after= (the next cursor
// of the previous page).
func pageRequest(r *http.Request) (repo.PageRequest, error) {
	p := repo.PageRequest{Limit: defaultLimit, After: r.URL.Query().Get("after")}
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return p, badRequest("limit must be an integer from 1 to %d", maxLimit)
		}
		p.Limit = n
	}
	return p, nil
}

// text validates a required text field: trimmed, not empty, at most max
// characters, no control characters (PostgreSQL refuses NUL in text).
func text(field string, v *string, max int) (string, error) {
	if v == nil {
		return "", badRequest("%s is required", field)
	}
	s := strings.TrimSpace(*v)
	switch {
	case s == "":
		return "", badRequest("%s must not be empty", field)
	case utf8.RuneCountInString(s) > max:
		return "", badRequest("%s must be at most %d characters", field, max)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return "", badRequest("%s must not hold control characters", field)
	}
	return s, nil
}

// positive validates a required positive integer field.
func positive(field string, v *int64) (int64, error) {
	switch {
	case v == nil:
		return 0, badRequest("%s is required", field)
	case *v <= 0:
		return 0, badRequest("%s must be a positive integer", field)
	}
	return *v, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, struct {
		Error string `json:"error"`
	}{msg})
}
