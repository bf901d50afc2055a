package migrations

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under schema/testdata/migrations")

func TestRenderMatchesGoldenFiles(t *testing.T) {
	custom := DefaultRetention()
	custom.Free = Tier{EventsDays: 14, PromptDays: 1}
	custom.RollupsDays = 730
	cases := []struct {
		golden string
		opts   Options
	}{
		{"single_node.sql", Options{Database: "telemetry", Retention: DefaultRetention()}},
		{"cluster.sql", Options{Database: "telemetry", Cluster: "analytics", Retention: DefaultRetention()}},
		{"single_node_custom_retention.sql", Options{Database: "tele", Retention: custom}},
	}
	for _, c := range cases {
		t.Run(c.golden, func(t *testing.T) {
			all, err := Render(c.opts)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if err := (Plan{Bootstrap: Bootstrap(c.opts), Migrations: all, Retention: RetentionStatements(c.opts)}).WriteSQL(&got); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("..", "testdata", "migrations", c.golden)
			if *update {
				if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./schema/migrations -update)", err)
			}
			if got.String() != string(want) {
				t.Errorf("rendered SQL differs from %s (go test ./schema/migrations -update, then review the diff):\n%s", path, got.String())
			}
		})
	}
}

func TestRenderClusterLayout(t *testing.T) {
	all, err := Render(Options{Database: "db", Cluster: "c1", Retention: DefaultRetention()})
	if err != nil {
		t.Fatal(err)
	}
	var sql []string
	for _, m := range all {
		sql = append(sql, m.Statements...)
	}
	for _, s := range RetentionStatements(Options{Database: "db", Cluster: "c1", Retention: DefaultRetention()}) {
		sql = append(sql, s.SQL)
	}
	for _, s := range sql {
		if !strings.Contains(s, " ON CLUSTER c1") {
			t.Errorf("statement without ON CLUSTER:\n%s", s)
		}
		if strings.Contains(s, "ENGINE = ") && !strings.Contains(s, "ENGINE = Replicated") && !strings.Contains(s, "ENGINE = Distributed") {
			t.Errorf("non-replicated engine on a cluster:\n%s", s)
		}
	}
	for _, table := range []string{"events", "errors", "rollups_daily", "rollups_hourly", "pipeline_metrics"} {
		want := "ENGINE = Distributed(c1, db, " + table + "_local,"
		if !strings.Contains(strings.Join(sql, "\n"), want) {
			t.Errorf("no Distributed table over %s_local", table)
		}
	}
}

func TestRenderChecksumIgnoresOptions(t *testing.T) {
	a, err := Render(Options{Database: "a", Retention: DefaultRetention()})
	if err != nil {
		t.Fatal(err)
	}
	r := DefaultRetention()
	r.Pro.EventsDays = 1000
	b, err := Render(Options{Database: "b", Cluster: "c", Retention: r})
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(b) || len(a) == 0 {
		t.Fatalf("%d vs %d migrations", len(a), len(b))
	}
	for i := range a {
		if a[i].Checksum != b[i].Checksum || a[i].Version != b[i].Version {
			t.Errorf("migration %d: checksum depends on options", a[i].Version)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	bad := func(f func(*Options)) Options {
		o := Options{Database: "telemetry", Retention: DefaultRetention()}
		f(&o)
		return o
	}
	cases := []struct {
		name string
		opts Options
		want string
	}{
		{"valid", bad(func(*Options) {}), ""},
		{"injected database", bad(func(o *Options) { o.Database = "x; DROP TABLE y" }), "database"},
		{"bad cluster", bad(func(o *Options) { o.Cluster = "a b" }), "cluster"},
		{"prompt outlives events", bad(func(o *Options) { o.Retention.Free.PromptDays = 31 }), "retention.free.prompt_days"},
		{"zero pro events", bad(func(o *Options) { o.Retention.Pro.EventsDays = 0 }), "retention.pro.events_days"},
		{"zero errors", bad(func(o *Options) { o.Retention.ErrorsDays = 0 }), "retention.errors_days"},
		{"zero rollups", bad(func(o *Options) { o.Retention.RollupsDays = -1 }), "retention.rollups_days"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.opts.Validate()
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate() = %v, want it to name %q", err, c.want)
			}
		})
	}
}

func TestSplitStatements(t *testing.T) {
	got := splitStatements("-- only a comment\nCREATE a;\n\n-- c\nCREATE b\n  (x);\n\n;\n")
	if len(got) != 2 || got[0] != "CREATE a" || got[1] != "CREATE b\n  (x)" {
		t.Fatalf("%q", got)
	}
}
