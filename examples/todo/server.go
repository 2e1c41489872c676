package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.uber.org/fx"
	"go.uber.org/zap"
)

// ServerConfig says where the service listens.
type ServerConfig struct {
	Addr string // host:port; port 0 picks a free one
}

// Listener serves the graph's http.Handler on ServerConfig.Addr from the
// app's start to its stop, and provides the *http.Server.
//
// Its hooks are appended after the engine's, because the server is built
// after what it depends on (the handler, the repositories, the engine):
// Fx runs OnStart hooks in order and OnStop hooks in reverse, so the
// server listens only once the database answers and is migrated, and at
// stop it finishes the requests in flight before the engine closes.
func Listener() fx.Option {
	return fx.Options(
		fx.Provide(newServer),
		fx.Invoke(func(*http.Server) {}),
	)
}

// ServerParams are what newServer takes from the Fx graph.
type ServerParams struct {
	fx.In

	Lifecycle  fx.Lifecycle
	Shutdowner fx.Shutdowner
	Config     ServerConfig
	Handler    http.Handler
	Logger     *zap.Logger `optional:"true"`
}

func newServer(p ServerParams) *http.Server {
	log := p.Logger
	if log == nil {
		log = zap.NewNop()
	}
	srv := &http.Server{
		Addr:              p.Config.Addr,
		Handler:           p.Handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	p.Lifecycle.Append(fx.Hook{
		OnStart: func(ctx context.Context) error {
			var lc net.ListenConfig
			ln, err := lc.Listen(ctx, "tcp", p.Config.Addr)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", p.Config.Addr, err)
			}
			srv.Addr = ln.Addr().String() // the port chosen, for port 0
			log.Info("listening", zap.String("addr", "http://"+srv.Addr))
			go func() {
				if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
					log.Error("serve", zap.Error(err))
					_ = p.Shutdowner.Shutdown(fx.ExitCode(1))
				}
			}()
			return nil
		},
		OnStop: func(ctx context.Context) error {
			log.Info("stopping: finishing the requests in flight")
			// Shutdown closes the listener and idle connections, then waits
			// for the active ones; when the stop timeout ends first, the
			// rest are cut.
			if err := srv.Shutdown(ctx); err != nil {
				_ = srv.Close()
				return fmt.Errorf("stop the HTTP server: %w", err)
			}
			log.Info("HTTP server stopped")
			return nil
		},
	})
	return srv
}
