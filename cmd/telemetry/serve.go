package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/sora3web/telemetry/internal/config"
	"github.com/sora3web/telemetry/internal/obs"
	"github.com/sora3web/telemetry/internal/pipeline"
	"github.com/sora3web/telemetry/sdk"
)

// newServeCmd runs the pipeline; only, when set, narrows the parts (the
// ingest command runs ingest alone).
func newServeCmd(g *globalFlags, name, short string, only func(*config.Config)) *cobra.Command {
	return &cobra.Command{
		Use:   name,
		Short: short,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if only != nil {
				only(&cfg)
			}
			log := obs.NewLogger(cfg.Log, os.Stderr)
			if cfg.RunsEngine() {
				setGoProcs(cfg.Embedded.GoProcsPerCPU, log)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()

			stopTracing, err := obs.SetupTracing(ctx, cfg.OTel)
			if err != nil {
				return err
			}
			m, err := obs.StartMetrics(ctx, cfg.OTel)
			if err != nil {
				return err
			}
			p, err := pipeline.New(cfg, log)
			if err != nil {
				return err
			}
			p.Handlers["GET /metrics"] = m.Handler
			p.Metrics = m.Reader
			p.Handlers["GET /v1/sdk.js"] = sdk.Handler()
			if cfg.Dev { // profiles for `go tool pprof`; never outside dev mode
				p.Handlers["GET /debug/pprof/"] = http.HandlerFunc(pprof.Index)
				p.Handlers["GET /debug/pprof/profile"] = http.HandlerFunc(pprof.Profile)
				p.Handlers["GET /debug/pprof/trace"] = http.HandlerFunc(pprof.Trace)
			}
			if err := p.Start(ctx); err != nil {
				return err
			}
			<-ctx.Done()
			log.Info("shutting down", "deadline", cfg.Serve.ShutdownTimeout.String())
			sctx, cancel := context.WithTimeout(context.Background(), cfg.Serve.ShutdownTimeout)
			defer cancel()
			perr := p.Shutdown(sctx)
			// The pipeline's spans have ended; flush them and the last
			// metrics. An OTLP endpoint that is down loses that telemetry,
			// not events, so it is a warning and not a failed stop.
			if err := errors.Join(stopTracing(sctx), m.Shutdown(sctx)); err != nil {
				log.Warn("flushing traces and metrics at shutdown failed", "err", err)
			}
			if perr != nil {
				return perr
			}
			log.Info("stopped cleanly")
			return nil
		},
	}
}

// ingestOnly narrows serve to the ingest endpoints (publishing to the bus).
func ingestOnly(c *config.Config) {
	c.Serve.Consumer, c.Serve.Migrate = false, false
}

// setGoProcs lets perCPU times Go's default number of threads run Go code
// at once (embedded.go_procs_per_cpu), unless the GOMAXPROCS environment
// variable chose it. Called once, before anything starts.
func setGoProcs(perCPU int, log *slog.Logger) {
	if perCPU <= 1 || os.Getenv("GOMAXPROCS") != "" {
		return
	}
	n := runtime.GOMAXPROCS(0) * perCPU
	runtime.GOMAXPROCS(n)
	log.Info("Go threads set for the embedded engine beside them", "gomaxprocs", n, "cpus", runtime.NumCPU())
}
