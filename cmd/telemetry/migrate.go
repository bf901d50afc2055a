package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sora3web/telemetry/internal/chconn"
	"github.com/sora3web/telemetry/internal/config"
	"github.com/sora3web/telemetry/schema/migrations"
)

// migrationOptions derives the migration options from the config.
func migrationOptions(cfg config.Config) migrations.Options {
	return migrations.Options{Database: cfg.ClickHouse.Database, Cluster: cfg.ClickHouse.Cluster, Retention: cfg.Retention}
}

func newMigrateCmd(g *globalFlags) *cobra.Command {
	var dryRun, offline bool
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Create or update the ClickHouse tables and apply the retention TTLs",
		Long: "migrate applies the embedded migrations not yet recorded in schema_migrations, then re-applies\n" +
			"every retention TTL whose SQL changed since it was last applied (schema_retention). It is idempotent.\n" +
			"--dry-run prints the SQL it would run; --offline prints every statement without connecting.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			opts := migrationOptions(cfg)
			out := cmd.OutOrStdout()
			if offline {
				all, err := migrations.Render(opts)
				if err != nil {
					return err
				}
				return migrations.Plan{Bootstrap: migrations.Bootstrap(opts), Migrations: all, Retention: migrations.RetentionStatements(opts)}.WriteSQL(out)
			}
			conn, err := chconn.Open(cfg.ClickHouse)
			if err != nil {
				return err
			}
			defer conn.Close()
			m, err := migrations.New(conn, opts)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if dryRun {
				p, err := m.Plan(ctx)
				if err != nil {
					return err
				}
				return p.WriteSQL(out)
			}
			p, err := m.Apply(ctx)
			if err != nil {
				return err
			}
			for _, mig := range p.Migrations {
				fmt.Fprintf(out, "applied %04d_%s\n", mig.Version, mig.Name)
			}
			for _, r := range p.Retention {
				fmt.Fprintf(out, "applied retention %s\n", r.Target)
			}
			if p.Empty() {
				fmt.Fprintln(out, "up to date")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the pending SQL instead of running it")
	cmd.Flags().BoolVar(&offline, "offline", false, "print every statement without connecting")
	return cmd
}
