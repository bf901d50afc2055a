package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/sora3web/telemetry/collector"
	"github.com/sora3web/telemetry/internal/obs"
	"github.com/sora3web/telemetry/sdk"
)

func newServeCmd(g *globalFlags, name, short string) *cobra.Command {
	return &cobra.Command{
		Use:   name,
		Short: short,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			log := obs.NewLogger(cfg.Log, os.Stderr)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()

			m, err := obs.SetupMetrics()
			if err != nil {
				return err
			}
			pub, err := collector.NewKafkaPublisher(cfg.Kafka, log)
			if err != nil {
				return err
			}
			srv, err := collector.New(cfg.Ingest, pub, log)
			if err != nil {
				return err
			}
			srv.Mount("GET /metrics", m.Handler)
			srv.Mount("GET /v1/sdk.js", sdk.Handler())
			if err := pub.Start(ctx); err != nil {
				return fmt.Errorf("starting kafka publisher: %w", err)
			}
			if err := srv.Start(ctx); err != nil {
				return err
			}
			log.Info("telemetry started", "command", name, "ingest", srv.Addr(), "kafka", cfg.Kafka.Brokers, "dev", cfg.Dev)
			<-ctx.Done()
			log.Info("shutting down", "deadline", cfg.Ingest.ShutdownTimeout)
			sctx, cancel := context.WithTimeout(context.Background(), cfg.Ingest.ShutdownTimeout)
			defer cancel()
			return errors.Join(srv.Shutdown(sctx), pub.Shutdown(sctx), m.Shutdown(sctx))
		},
	}
}
