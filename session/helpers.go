package session

import "context"

// DriverName is the database/sql driver name of the Manager's pools.
func (m *Manager) DriverName() string { return m.bind.driver }

// Rebind turns a query written with ? placeholders into the driver's
// form ($1, $2 ... on PostgreSQL), so that SQL text can be prepared once.
func (m *Manager) Rebind(query string) string { return m.bind.Rebind(query) }

// ReadOnly is Manager.ReadOnly for a fn that returns a value.
func ReadOnly[T any](ctx context.Context, m *Manager, fn func(ctx context.Context) (T, error), opts ...TxOption) (T, error) {
	var out T
	err := m.ReadOnly(ctx, func(ctx context.Context) error {
		var err error
		out, err = fn(ctx)
		return err
	}, opts...)
	if err != nil {
		var zero T
		return zero, err
	}
	return out, nil
}
