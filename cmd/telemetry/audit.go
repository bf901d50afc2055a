package main

import (
	"encoding/json"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/sora3web/telemetry/internal/audit"
	"github.com/sora3web/telemetry/internal/chconn"
	"github.com/sora3web/telemetry/internal/pipeline"
)

// newAuditCmd prints the completeness audit (internal/audit) from
// pipeline_audit and events, and fails when events were lost or stored
// twice.
func newAuditCmd(g *globalFlags) *cobra.Command {
	var (
		since, grace time.Duration
		asJSON       bool
		settled      bool
	)
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Balance every closed minute: accepted = stored + deduplicated + dead-lettered + filtered; exit 1 on loss or duplicates",
		Long: "audit reads pipeline_audit and events (the embedded engine's HTTP interface when embedded.enabled, else\n" +
			"clickhouse.*) and prints, per minute of received_at and source, what each stage counted. A window is closed\n" +
			"once its minute and audit.grace are over; then lost = accepted - stored - deduplicated - dead-lettered - filtered.\n" +
			"Windows still open show what is in flight. Duplicates are event_ids stored more than once. Then the browsers'\n" +
			"delivery: the numbered events (seq) of each session that never arrived, by browser and at unload.\n" +
			"The exit status is 1 when anything was lost or duplicated. --settled takes every window as closed (ingest\n" +
			"stopped and the consumer caught up).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("grace") {
				grace = cfg.Audit.Grace
			}
			p, err := pipeline.New(cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				return err
			}
			conn, err := chconn.Open(p.ClickHouseConfig())
			if err != nil {
				return err
			}
			defer conn.Close()
			rep, err := audit.Query(cmd.Context(), conn, audit.Options{Database: cfg.ClickHouse.Database,
				Since: time.Now().Add(-since), Grace: grace, Settled: settled})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				err = enc.Encode(struct {
					Clean bool `json:"clean"`
					*audit.Report
				}{rep.Clean(), rep})
			} else {
				err = rep.WriteText(out)
			}
			if err != nil {
				return err
			}
			cmd.SilenceUsage = true
			return rep.Check()
		},
	}
	f := cmd.Flags()
	f.DurationVar(&since, "since", time.Hour, "first window: this long ago")
	f.DurationVar(&grace, "grace", 0, "how long after its minute a window is in flight (default audit.grace)")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	f.BoolVar(&settled, "settled", false, "take every window as closed (ingest stopped, consumer caught up)")
	return cmd
}
