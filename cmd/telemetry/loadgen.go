package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"time"

	"github.com/spf13/cobra"

	"github.com/sora3web/telemetry/internal/config"
	"github.com/sora3web/telemetry/internal/loadgen"
)

func newLoadgenCmd() *cobra.Command {
	cfg := loadgen.Config{URL: "http://127.0.0.1:8080", WriteKey: config.DevWriteKey, Mode: "batch", BatchSize: 50, Concurrency: 8, Duration: 10 * time.Second, Users: 10000, Seed: 1}
	var (
		asJSON     bool
		cpuProfile string
	)
	cmd := &cobra.Command{
		Use:   "loadgen",
		Short: "Send a realistic event mix to an ingest endpoint and report throughput and latency",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			cfg.Progress = cmd.ErrOrStderr()
			if cpuProfile != "" {
				// The load generator shares the machine with what it
				// measures: its own CPU is part of every figure.
				f, err := os.Create(cpuProfile)
				if err != nil {
					return fmt.Errorf("creating the cpu profile: %w", err)
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return fmt.Errorf("starting the cpu profile: %w", err)
				}
				defer pprof.StopCPUProfile()
			}
			r, err := loadgen.Run(ctx, cfg)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(r)
			}
			r.WriteText(cmd.OutOrStdout())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.URL, "url", cfg.URL, "collector base URL")
	f.StringVar(&cfg.WriteKey, "write-key", cfg.WriteKey, "write key")
	f.StringVar(&cfg.Mode, "mode", cfg.Mode, "batch (/v1/events) or beacon (/v1/beacon)")
	f.IntVar(&cfg.BatchSize, "batch", cfg.BatchSize, "events per request")
	f.Float64Var(&cfg.Rate, "rate", cfg.Rate, "target events/s (0: as fast as possible)")
	f.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "concurrent senders")
	f.IntVar(&cfg.MaxConcurrency, "max-concurrency", cfg.MaxConcurrency, "with --rate: start more senders when all are busy, up to this many (0: a fixed pool of --concurrency)")
	f.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long to send")
	f.IntVar(&cfg.Users, "users", cfg.Users, "simulated user population")
	f.BoolVar(&cfg.UniqueUA, "unique-ua", cfg.UniqueUA, "give every event a never-seen user agent")
	f.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "event mix seed")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write the load generator's own CPU profile to this file")
	return cmd
}
