package dashboards_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/go-viper/mapstructure/v2"
	"gopkg.in/yaml.v3"

	"github.com/sora3web/telemetry/dashboards"
	"github.com/sora3web/telemetry/internal/config"
)

// composeFile is the part of docker-compose.yml the test checks.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Command     []string          `yaml:"command"`
	Restart     string            `yaml:"restart"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

// composeVars are the values given to the variables docker-compose.yml
// requires (as an operator's .env would).
var composeVars = map[string]string{
	"TELEMETRY_WRITE_KEY":       "prod-web-write-key-0123456789",
	"CLICKHOUSE_PASSWORD":       "s3cret-password",
	"GRAFANA_ADMIN_PASSWORD":    "grafana-admin-password",
	"TELEMETRY_ADMIN_TOKEN":     "prod-admin-token-0123456789abcdef0123456789",
	"TELEMETRY_DASHBOARD_TOKEN": "prod-staff-token-0123456789abcdef0123456789",
}

var interpRE = regexp.MustCompile(`\$\{(\w+)(?:(:?[-?])([^}]*))?\}|\$\$`)

// interpolate does Compose's variable substitution: ${VAR}, ${VAR:-default},
// ${VAR-default}, ${VAR:?error}, ${VAR?error} and $$.
func interpolate(s string, vars map[string]string) (string, error) {
	var errs []string
	out := interpRE.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		g := interpRE.FindStringSubmatch(m)
		v, set := vars[g[1]]
		empty := !set || (strings.HasPrefix(g[2], ":") && v == "")
		switch strings.TrimPrefix(g[2], ":") {
		case "-":
			if empty {
				return g[3]
			}
		case "?":
			if empty {
				errs = append(errs, fmt.Sprintf("%s: %s", g[1], g[3]))
			}
		default:
			if !set {
				errs = append(errs, g[1]+": not set and no default")
			}
		}
		return v
	})
	if errs != nil {
		return "", fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return out, nil
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

// configKeys returns the TELEMETRY_* variable of every config key.
func configKeys(t *testing.T) map[string]string {
	t.Helper()
	var m map[string]any
	if err := mapstructure.Decode(config.Default(), &m); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			key := prefix + k
			if sub, ok := v.(map[string]any); ok {
				walk(key+".", sub)
				continue
			}
			out["TELEMETRY_"+strings.ToUpper(strings.ReplaceAll(key, ".", "_"))] = key
		}
	}
	walk("", m)
	return out
}

func port(t *testing.T, hostport string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatalf("%q: %v", hostport, err)
	}
	return p
}

func TestComposeTopology(t *testing.T) {
	c := loadCompose(t)
	wantImages := map[string]string{"kafka": "apache/kafka:", "clickhouse": "clickhouse/clickhouse-server:",
		"grafana": "grafana/grafana:", "prometheus": "prom/prometheus:"}
	telemetry := map[string]string{"ingest": "ingest", "migrate": "migrate", "consume": "consume"}
	for name, prefix := range wantImages {
		s, ok := c.Services[name]
		if !ok || !strings.HasPrefix(s.Image, prefix) {
			t.Errorf("service %s: image %q, want %s...", name, s.Image, prefix)
		}
	}
	for name, cmd := range telemetry {
		s, ok := c.Services[name]
		if !ok || s.Build != "." || !slices.Equal(s.Command, []string{cmd}) {
			t.Errorf("service %s: build %v command %v, want build . and [%s]", name, s.Build, s.Command, cmd)
		}
	}
	if len(c.Services) != len(wantImages)+len(telemetry) {
		t.Errorf("services %v: unexpected extra services", keys(c.Services))
	}
	dockerfile, err := os.ReadFile(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"FROM golang:", " AS build", "go build", "./cmd/telemetry", "COPY --from=build", `ENTRYPOINT ["/usr/local/bin/telemetry"]`} {
		if !strings.Contains(string(dockerfile), want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}

	for name, s := range c.Services {
		t.Run(name, func(t *testing.T) {
			switch {
			case name == "migrate":
				if s.Restart != "on-failure" {
					t.Errorf("restart %q: a one-shot job restarts on-failure only", s.Restart)
				}
			case s.Restart != "unless-stopped" && s.Restart != "always":
				t.Errorf("restart %q, want unless-stopped or always", s.Restart)
			}
			if name != "migrate" && (s.Healthcheck == nil || len(s.Healthcheck.Test) < 2 || !slices.Contains([]string{"CMD", "CMD-SHELL"}, s.Healthcheck.Test[0])) {
				t.Errorf("healthcheck %+v: want CMD or CMD-SHELL test", s.Healthcheck)
			}
			for dep, d := range s.DependsOn {
				ds, ok := c.Services[dep]
				switch {
				case !ok:
					t.Errorf("depends_on %s: no such service", dep)
				case d.Condition == "service_healthy" && ds.Healthcheck == nil:
					t.Errorf("depends_on %s healthy: it has no healthcheck", dep)
				case !slices.Contains([]string{"service_healthy", "service_started", "service_completed_successfully"}, d.Condition):
					t.Errorf("depends_on %s: condition %q", dep, d.Condition)
				}
			}
			for _, v := range s.Volumes {
				parts := strings.Split(v, ":")
				if len(parts) < 2 || !strings.HasPrefix(parts[1], "/") {
					t.Errorf("volume %q: want source:/target[:ro]", v)
					continue
				}
				if strings.HasPrefix(parts[0], ".") {
					if _, err := os.Stat(filepath.Join("..", parts[0])); err != nil {
						t.Errorf("volume %q: bind source missing in the repository: %v", v, err)
					}
				} else if _, ok := c.Volumes[parts[0]]; !ok {
					t.Errorf("volume %q: named volume %s not declared", v, parts[0])
				}
			}
			for _, p := range s.Ports {
				if !regexp.MustCompile(`^(\d+\.\d+\.\d+\.\d+:)?\d+:\d+$`).MatchString(p) {
					t.Errorf("port %q: want [ip:]host:container", p)
				}
			}
		})
	}
	deps := func(s string) map[string]string {
		out := map[string]string{}
		for k, v := range c.Services[s].DependsOn {
			out[k] = v.Condition
		}
		return out
	}
	for svc, want := range map[string]map[string]string{
		"migrate": {"clickhouse": "service_healthy"},
		"ingest":  {"kafka": "service_healthy"},
		"consume": {"kafka": "service_healthy", "clickhouse": "service_healthy", "migrate": "service_completed_successfully"},
		"grafana": {"clickhouse": "service_healthy", "prometheus": "service_healthy"},
	} {
		got := deps(svc)
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s depends_on %s: %q, want %q", svc, k, got[k], v)
			}
		}
	}
}

// TestComposeTelemetryConfig loads each telemetry service's environment
// through internal/config (dev false) and checks that every TELEMETRY_*
// variable is a config key and took effect, and that the addresses point at
// the services.
func TestComposeTelemetryConfig(t *testing.T) {
	c := loadCompose(t)
	known := configKeys(t)
	for _, name := range []string{"ingest", "migrate", "consume"} {
		t.Run(name, func(t *testing.T) {
			s := c.Services[name]
			env := map[string]string{}
			for k, v := range s.Environment {
				val, err := interpolate(v, composeVars)
				if err != nil {
					t.Fatalf("%s: %v", k, err)
				}
				if strings.HasPrefix(k, "TELEMETRY_") {
					if _, ok := known[k]; !ok {
						t.Errorf("%s: not a config key (known: %v)", k, sortedKeys(known))
					}
				}
				env[k] = val
			}
			for k := range known { // nothing from the test's own environment leaks in
				t.Setenv(k, "")
				os.Unsetenv(k)
			}
			for k, v := range env {
				t.Setenv(k, v)
			}
			cfg, err := config.Load("", nil)
			if err != nil {
				t.Fatalf("config.Load with the service's environment: %v", err)
			}
			if cfg.Dev {
				t.Error("dev is true: production must set TELEMETRY_DEV=false")
			}
			if cfg.Bus != "kafka" || cfg.Embedded.Enabled {
				t.Errorf("bus %q, embedded %v: production uses Kafka and the ClickHouse server", cfg.Bus, cfg.Embedded.Enabled)
			}
			for _, k := range cfg.Ingest.WriteKeys {
				if k.Key == config.DevWriteKey || k.Key != composeVars["TELEMETRY_WRITE_KEY"] || k.Source != "web" {
					t.Errorf("write key %+v, want the operator's key for source web", k)
				}
			}
			if cfg.ClickHouse.Protocol != "native" || !slices.Equal(cfg.ClickHouse.Addr, []string{"clickhouse:9000"}) ||
				cfg.ClickHouse.Password != composeVars["CLICKHOUSE_PASSWORD"] || cfg.ClickHouse.User != "telemetry" {
				t.Errorf("clickhouse config %+v: want native clickhouse:9000 as telemetry with the password", cfg.ClickHouse)
			}
			if ch := c.Services["clickhouse"].Environment; ch["CLICKHOUSE_USER"] != s.Environment["TELEMETRY_CLICKHOUSE_USER"] ||
				ch["CLICKHOUSE_PASSWORD"] != s.Environment["TELEMETRY_CLICKHOUSE_PASSWORD"] {
				t.Error("the ClickHouse server's user/password differ from the client's")
			}
			adv := c.Services["kafka"].Environment["KAFKA_ADVERTISED_LISTENERS"]
			for _, b := range cfg.Kafka.Brokers {
				if !strings.Contains(adv, "//"+b) {
					t.Errorf("broker %s is not advertised by kafka (%s)", b, adv)
				}
			}
			if cfg.Kafka.ReplicationFactor != 1 {
				t.Errorf("replication_factor %d on a single broker", cfg.Kafka.ReplicationFactor)
			}
		})
	}
	ingest := c.Services["ingest"]
	listen := ingest.Environment["TELEMETRY_INGEST_LISTEN"]
	lp := port(t, listen)
	if !slices.ContainsFunc(ingest.Ports, func(p string) bool { return strings.HasSuffix(p, ":"+lp) }) {
		t.Errorf("ingest ports %v do not publish the listen port %s", ingest.Ports, lp)
	}
	if !strings.Contains(strings.Join(ingest.Healthcheck.Test, " "), "127.0.0.1:"+lp+"/readyz") {
		t.Errorf("ingest healthcheck %v does not probe /readyz on %s", ingest.Healthcheck.Test, lp)
	}

	// Prometheus scrapes ingest on its listen port.
	var prom struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, filepath.Join("prometheus", "prometheus.yml"), &prom)
	found := false
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				if tg == "ingest:"+lp && (sc.MetricsPath == "" || sc.MetricsPath == "/metrics") {
					found = true
				}
			}
		}
	}
	if !found {
		t.Errorf("prometheus.yml scrapes no ingest:%s/metrics: %+v", lp, prom.ScrapeConfigs)
	}
	mounted := false
	for _, v := range c.Services["prometheus"].Volumes {
		if strings.HasPrefix(v, "./dashboards/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml") {
			mounted = true
		}
	}
	if !mounted {
		t.Error("prometheus does not mount dashboards/prometheus/prometheus.yml")
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestGrafanaProvisioning checks the plugin install, the provisioning
// mounts, the data sources every panel refers to and their addresses.
func TestGrafanaProvisioning(t *testing.T) {
	c := loadCompose(t)
	g := c.Services["grafana"]
	if !strings.Contains(g.Environment["GF_INSTALL_PLUGINS"], dashboards.ClickHouseType) {
		t.Errorf("GF_INSTALL_PLUGINS=%q lacks %s", g.Environment["GF_INSTALL_PLUGINS"], dashboards.ClickHouseType)
	}
	mounts := map[string]string{}
	for _, v := range g.Volumes {
		p := strings.Split(v, ":")
		mounts[p[1]] = p[0]
	}
	if mounts["/etc/grafana/provisioning"] != "./dashboards/grafana/provisioning" {
		t.Errorf("provisioning mount: %v", mounts)
	}
	var prov struct {
		Providers []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, filepath.Join("grafana", "provisioning", "dashboards", "telemetry.yaml"), &prov)
	if len(prov.Providers) != 1 || prov.Providers[0].Type != "file" || mounts[prov.Providers[0].Options.Path] != "./dashboards/grafana" {
		t.Errorf("dashboard provider %+v does not read the mounted ./dashboards/grafana (%v)", prov.Providers, mounts)
	}
	if p := g.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; p != "" {
		if _, err := os.Stat(filepath.Join("grafana", strings.TrimPrefix(p, prov.Providers[0].Options.Path))); err != nil {
			t.Errorf("home dashboard %s: %v", p, err)
		}
	}
	var dsf struct {
		Datasources []struct {
			UID      string         `yaml:"uid"`
			Type     string         `yaml:"type"`
			URL      string         `yaml:"url"`
			JSONData map[string]any `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	readYAML(t, filepath.Join("grafana", "provisioning", "datasources", "clickhouse.yaml"), &dsf)
	uids := map[string]string{}
	for _, d := range dsf.Datasources {
		uids[d.UID] = d.Type
		switch d.Type {
		case dashboards.ClickHouseType:
			if d.JSONData["host"] != "clickhouse" || d.JSONData["port"] != 9000 || d.JSONData["protocol"] != "native" || d.JSONData["defaultDatabase"] != "telemetry" {
				t.Errorf("clickhouse data source %v: want clickhouse:9000 native, database telemetry", d.JSONData)
			}
			if _, ok := c.Services["clickhouse"]; !ok {
				t.Error("no clickhouse service")
			}
		case dashboards.PrometheusType:
			if d.URL != "http://prometheus:9090" {
				t.Errorf("prometheus url %q", d.URL)
			}
		}
	}
	for _, v := range []string{"CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD"} {
		if g.Environment[v] == "" {
			t.Errorf("grafana lacks %s, read by the data source provisioning", v)
		}
	}
	ds, err := dashboards.Dashboards()
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 5 {
		t.Errorf("%d dashboards, want product, errors, explorer, pipeline and pipeline-history", len(ds))
	}
	for _, d := range ds {
		for _, p := range d.Panels {
			for _, ref := range append([]dashboards.Datasource{p.Datasource}, func() []dashboards.Datasource {
				var r []dashboards.Datasource
				for _, tg := range p.Targets {
					r = append(r, tg.Datasource)
				}
				return r
			}()...) {
				if uids[ref.UID] != ref.Type {
					t.Errorf("%s panel %d %q: data source %+v not provisioned (%v)", d.File, p.ID, p.Title, ref, uids)
				}
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s panel %d %q has no query", d.File, p.ID, p.Title)
			}
		}
	}
}

func keys[V any](m map[string]V) []string { return sortedKeys(m) }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
