package localbackend_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/noxrunner/nox/localbackend"
)

// Example shows how a binary serves the local backend: MaybeRunInit first,
// then New, Handler and Close.
func Example() {
	localbackend.MaybeRunInit() // first thing in main

	cfg := localbackend.DefaultConfig()
	cfg.DataDir = "/var/lib/nox"
	cfg.Token = "change-me"
	b, err := localbackend.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	info := b.Info()
	fmt.Printf("nox-local %s: isolation %s (isolated=%v), data in %s\n", info.Version, info.Tier, info.Isolated, info.DataDir)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Addr: "127.0.0.1:8080", Handler: b.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
