package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/sora3web/telemetry/internal/corpus"
)

// newPromptsCmd hands the anonymised prompt corpus (internal/corpus) to a
// model team.
func newPromptsCmd(g *globalFlags) *cobra.Command {
	root := &cobra.Command{Use: "prompts", Short: "The anonymised prompt corpus: export"}
	var since, format, output, chURL string
	export := &cobra.Command{
		Use:   "export",
		Short: "Stream the anonymised prompt corpus as JSON lines or Parquet, with a progress line on stderr",
		Long: `Stream the rows of prompt_corpus of the last --since days (today included)
to stdout or --output, as JSON lines or Parquet, both produced by ClickHouse
over its HTTP interface. The rows hold no identifier: the day, the scrubbed
prompt, the generation's properties, the device class and the outcome.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			d, err := corpus.ParseSince(since)
			if err != nil {
				return err
			}
			if chURL == "" {
				switch {
				case cfg.Embedded.Enabled:
					chURL = "http://" + cfg.Embedded.Listen
				case cfg.ClickHouse.Protocol == "http":
					chURL = "http://" + cfg.ClickHouse.Addr[0]
				default:
					return fmt.Errorf("--clickhouse-url: required when clickhouse.protocol is native (the export reads ClickHouse's HTTP interface, e.g. http://host:8123)")
				}
			}
			var w io.Writer = cmd.OutOrStdout()
			if output != "" && output != "-" {
				f, err := os.Create(output)
				if err != nil {
					return fmt.Errorf("creating %s: %w", output, err)
				}
				defer f.Close()
				w = f
			}
			errw := cmd.ErrOrStderr()
			exp := corpus.Export{URL: chURL, User: cfg.ClickHouse.User, Password: cfg.ClickHouse.Password, Database: cfg.ClickHouse.Database, Since: d, Format: format}
			if err := exp.Run(cmd.Context(), w, func(p corpus.Progress) {
				end := "\r"
				if p.Done {
					end = "\n"
				}
				fmt.Fprint(errw, corpus.FormatProgress(p)+end)
			}); err != nil {
				return err
			}
			if f, ok := w.(*os.File); ok && f != os.Stdout {
				if err := f.Sync(); err != nil {
					return fmt.Errorf("writing %s: %w", output, err)
				}
			}
			return nil
		},
	}
	export.Flags().StringVar(&since, "since", "30d", "export the days of this long ago until today: days (30d) or a duration (72h)")
	export.Flags().StringVar(&format, "format", corpus.FormatJSONL, "jsonl or parquet")
	export.Flags().StringVarP(&output, "output", "o", "-", "file to write (- for stdout)")
	export.Flags().StringVar(&chURL, "clickhouse-url", "", "ClickHouse HTTP interface (default: the embedded engine's embedded.listen, or clickhouse.addr over http)")
	root.AddCommand(export)
	return root
}
