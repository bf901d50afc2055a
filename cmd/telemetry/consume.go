package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sora3web/telemetry/internal/obs"
	"github.com/sora3web/telemetry/sinks/consumer"
	"github.com/sora3web/telemetry/sinks/consumer/chconn"
)

// consumeShutdownTimeout bounds the final flush on SIGTERM.
const consumeShutdownTimeout = 30 * time.Second

func newConsumeCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "consume",
		Short: "Consume the events topic into ClickHouse (run `telemetry migrate` first)",
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
			conn, err := chconn.Open(cfg.ClickHouse)
			if err != nil {
				return err
			}
			defer conn.Close()
			c, err := consumer.New(cfg.Consumer, cfg.Kafka, consumer.NewClickHouseSink(conn, cfg.ClickHouse.Database), log)
			if err != nil {
				return err
			}
			if err := c.Start(ctx); err != nil {
				return err
			}
			<-ctx.Done()
			log.Info("shutting down consumer", "deadline", consumeShutdownTimeout)
			sctx, cancel := context.WithTimeout(context.Background(), consumeShutdownTimeout)
			defer cancel()
			return errors.Join(c.Shutdown(sctx), m.Shutdown(sctx))
		},
	}
}
