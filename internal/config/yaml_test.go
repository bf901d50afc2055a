package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sora3web/telemetry/collector"
)

// TestYAMLRedactsSecretsAndReadsBack: `telemetry config` prints no secret,
// and what it prints loads back into the same configuration but for the
// redacted values.
func TestYAMLRedactsSecretsAndReadsBack(t *testing.T) {
	c := Default()
	c.Ingest.WriteKeys = []collector.WriteKey{{Key: "web-key-0123456789abcdef", Source: "web"}, {Key: "srv-key-0123456789abcdef", Source: "server"}}
	c.Admin.Token = "admin-token-0123456789abcdef0123456789"
	c.ClickHouse.Password = "clickhouse-password-42"
	c.Dashboard.Token = "staff-token-0123456789abcdef0123456789"
	c.Consumer.BatchInterval = 1500 * time.Millisecond
	c.Ingest.RateLimitPerIP.Rate = 12.5
	out, err := YAML(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"web-key-0123456789abcdef", "srv-key-0123456789abcdef", c.Admin.Token, c.ClickHouse.Password, c.Dashboard.Token} {
		if strings.Contains(string(out), secret) {
			t.Fatalf("secret %q printed:\n%s", secret, out)
		}
	}
	if n := strings.Count(string(out), Redacted); n != 5 {
		t.Fatalf("%d values redacted, want 5:\n%s", n, out)
	}
	// Put the secrets back where the placeholders stand (in the order of
	// the tree: ingest, clickhouse, admin, dashboard): the rest must load as it was.
	filled := string(out)
	for _, secret := range []string{"web-key-0123456789abcdef", "srv-key-0123456789abcdef", c.ClickHouse.Password, c.Admin.Token, c.Dashboard.Token} {
		filled = strings.Replace(filled, Redacted, secret, 1)
	}
	path := filepath.Join(t.TempDir(), "telemetry.yaml")
	if err := os.WriteFile(path, []byte(filled), 0o644); err != nil {
		t.Fatal(err)
	}
	back, err := Load(path, nil)
	if err != nil {
		t.Fatalf("loading the printed config: %v\n%s", err, filled)
	}
	if !reflect.DeepEqual(back, c) {
		t.Fatalf("read back differs:\n got %+v\nwant %+v", back, c)
	}
}

// TestConsumerUACacheFollowsIngest: ingest.ua_cache_size sizes both
// user-agent caches, ingest's and the consumer's (for deferred agents).
func TestConsumerUACacheFollowsIngest(t *testing.T) {
	c, err := Load("", map[string]any{"ingest.ua_cache_size": 1234})
	if err != nil {
		t.Fatal(err)
	}
	if c.Consumer.UACacheSize != 1234 {
		t.Fatalf("consumer UA cache %d, want ingest's 1234", c.Consumer.UACacheSize)
	}
}
