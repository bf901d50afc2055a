package main

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sora3web/telemetry/internal/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// globalFlags are the flags every subcommand shares.
type globalFlags struct {
	configPath string
	set        []string
	listen     string
	brokers    string
}

func newRootCmd() *cobra.Command {
	var g globalFlags
	root := &cobra.Command{
		Use:           "telemetry",
		Short:         "Usage-telemetry pipeline: ingest -> Kafka -> ClickHouse",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVarP(&g.configPath, "config", "c", "", "config file (default ./telemetry.yaml when present)")
	pf.StringArrayVar(&g.set, "set", nil, "override a config key, e.g. --set kafka.partitions=8 (repeatable)")
	pf.StringVar(&g.listen, "listen", "", "ingest listen address (ingest.listen)")
	pf.StringVar(&g.brokers, "kafka-brokers", "", "comma-separated Kafka brokers (kafka.brokers)")
	root.AddCommand(newServeCmd(&g, "serve", "Run every configured part of the pipeline (all-in-one on defaults)", nil), newServeCmd(&g, "ingest", "Run the ingest endpoints only", ingestOnly), newVersionCmd(), newConfigCmd(&g), newMigrateCmd(&g), newServeCmd(&g, "consume", "Consume the bus into ClickHouse (run `telemetry migrate` first)", consumeOnly))
	root.AddCommand(newLoadgenCmd())
	root.AddCommand(newPrivacyCmd(&g), newPromptsCmd(&g), newAuditCmd(&g))
	return root
}

// load reads the config with the flags applied as overrides.
func (g *globalFlags) load() (config.Config, error) {
	over := map[string]any{}
	if g.listen != "" {
		over["ingest.listen"] = g.listen
	}
	if g.brokers != "" {
		over["kafka.brokers"] = g.brokers
	}
	for _, kv := range g.set {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return config.Config{}, fmt.Errorf("--set %q: must be key=value", kv)
		}
		over[k] = v
	}
	return config.Load(g.configPath, over)
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Run: func(cmd *cobra.Command, _ []string) {
			v := version
			if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" {
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						v += "+" + s.Value
					}
				}
			}
			fmt.Fprintln(cmd.OutOrStdout(), "telemetry", v)
		},
	}
}

func newConfigCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "config",
		Short: "Validate the configuration and print it as YAML, secrets redacted",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.load()
			if err != nil {
				return err
			}
			out, err := config.YAML(c)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
}
