package dbfx

import (
	"go.uber.org/fx"

	"github.com/enginekit/enginekit/repo"
	"github.com/enginekit/enginekit/session"
)

// ProvideRepository provides a *repo.Repository[T, ID] over the unnamed
// engine's *session.Manager (the one Module provides), so that a
// constructor can take it as a parameter:
//
//	fx.New(
//		fx.Supply(cfg),
//		dbfx.Module,
//		dbfx.ProvideRepository[User, int64](),
//		fx.Provide(NewUserHandler), // func NewUserHandler(users *repo.Repository[User, int64]) *UserHandler
//	)
//
// The repository is built without touching the database; a mapping error
// (see repo.New) fails the app's construction.
func ProvideRepository[T any, ID comparable](opts ...repo.Option) fx.Option {
	return fx.Provide(func(m *session.Manager) (*repo.Repository[T, ID], error) {
		return repo.New[T, ID](m, opts...)
	})
}
