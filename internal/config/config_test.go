package config

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/go-viper/mapstructure/v2"
	"gopkg.in/yaml.v3"
)

func TestExampleConfigEqualsDefaultsAndDocumentsEveryKey(t *testing.T) {
	path := filepath.Join("..", "..", "telemetry.example.yaml")
	got, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, Default()) {
		t.Fatalf("example config differs from defaults:\n got %+v\nwant %+v", got, Default())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var defMap map[string]any
	if err := mapstructure.Decode(Default(), &defMap); err != nil {
		t.Fatal(err)
	}
	want, have := keys(flatten("", defMap)), keys(flatten("", doc))
	if !reflect.DeepEqual(want, have) {
		t.Fatalf("example keys differ from config keys:\nconfig:  %v\nexample: %v", want, have)
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestLoadRefusesInvalidConfigNamingTheField(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		file string
		want string
	}{
		{"zero partitions", map[string]string{"TELEMETRY_KAFKA_PARTITIONS": "0"}, "", "kafka.partitions: must be > 0"},
		{"bad compression", map[string]string{"TELEMETRY_KAFKA_COMPRESSION": "brotli"}, "", "kafka.compression"},
		{"short write key", map[string]string{"TELEMETRY_INGEST_WRITE_KEYS": "short:web"}, "", "ingest.write_keys[0].key: must be at least 16 characters"},
		{"dev key outside dev", map[string]string{"TELEMETRY_DEV": "false"}, "", "development key is refused"},
		{"event larger than request", nil, "ingest:\n  max_event_bytes: 9999999\n", "ingest.max_event_bytes"},
		{"unknown key", nil, "ingest:\n  listne: 1.2.3.4:80\n", "listne"},
		{"bad proxy", nil, "ingest:\n  trusted_proxies: [nonsense]\n", "ingest.trusted_proxies[0]"},
		{"bad log level", map[string]string{"TELEMETRY_LOG_LEVEL": "loud"}, "", "log.level"},
		{"dev admin token outside dev", map[string]string{"TELEMETRY_DEV": "false"}, "", "admin.token: the development token is refused"},
		{"short admin token outside dev", map[string]string{"TELEMETRY_DEV": "false", "TELEMETRY_ADMIN_TOKEN": "short-admin-token-0123456789"}, "", "admin.token: must be at least 32 characters"},
		{"missing admin token outside dev", nil, "dev: false\nadmin:\n  token: \"\"\n", "admin.token: required"},
		{"admin listen", nil, "admin:\n  listen: nowhere\n", "admin.listen: must be host:port"},
		{"corpus k", map[string]string{"TELEMETRY_CORPUS_K": "1"}, "", "corpus.k: must be at least 2"},
		{"corpus lag past the prompt TTL", nil, "retention:\n  free:\n    prompt_days: 2\n", "corpus.lag: 1 day + lag + interval must leave a day before the shortest prompt retention (2 days"},
		{"anonymized prompts days", map[string]string{"TELEMETRY_RETENTION_ANONYMIZED_PROMPTS_DAYS": "0"}, "", "retention.anonymized_prompts_days: must be > 0"},
		{"dev staff token outside dev", map[string]string{"TELEMETRY_DEV": "false", "TELEMETRY_ADMIN_TOKEN": "prod-admin-token-0123456789abcdef0123"}, "", "dashboard.token: the development token is refused"},
		{"short staff token outside dev", map[string]string{"TELEMETRY_DEV": "false", "TELEMETRY_DASHBOARD_TOKEN": "short-staff-token"}, "", "dashboard.token: must be at least 32 characters"},
		{"dashboard listen", nil, "dashboard:\n  listen: nowhere\n", "dashboard.listen: must be host:port"},
		{"go procs per cpu", map[string]string{"TELEMETRY_EMBEDDED_GO_PROCS_PER_CPU": "0"}, "", "embedded.go_procs_per_cpu: must be 1 to 8, got 0"},
		{"audit flush interval past half the grace", map[string]string{"TELEMETRY_AUDIT_FLUSH_INTERVAL": "90s"}, "", "audit.flush_interval: must be > 0 and at most half of audit.grace"},
		{"audit flush interval zero", nil, "audit:\n  flush_interval: 0s\n", "audit.flush_interval: must be > 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			path := ""
			if c.file != "" {
				path = filepath.Join(t.TempDir(), "telemetry.yaml")
				if err := os.WriteFile(path, []byte(c.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Load(path, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Load error %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestLoadLayersFileEnvAndOverrides(t *testing.T) {
	path := filepath.Join(t.TempDir(), "telemetry.yaml")
	os.WriteFile(path, []byte("dev: false\ningest:\n  listen: 0.0.0.0:9000\n  write_keys:\n    - {key: prod-key-0123456789abcdef, source: web}\nkafka:\n  partitions: 12\nadmin:\n  token: prod-admin-token-0123456789abcdef0123\ndashboard:\n  token: prod-staff-token-0123456789abcdef0123\n"), 0o600)
	t.Setenv("TELEMETRY_KAFKA_BROKERS", "k1:9092,k2:9092")
	t.Setenv("TELEMETRY_INGEST_PUBLISH_TIMEOUT", "750ms")
	c, err := Load(path, map[string]any{"kafka.partitions": "24"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Dev || c.Ingest.Listen != "0.0.0.0:9000" || c.Kafka.Partitions != 24 || len(c.Kafka.Brokers) != 2 || c.Kafka.Brokers[1] != "k2:9092" ||
		c.Ingest.PublishTimeout.Milliseconds() != 750 || c.Ingest.WriteKeys[0].Source != "web" {
		t.Fatalf("layering: %+v", c)
	}
}
