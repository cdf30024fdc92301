package collector_test

import (
	"testing"

	"github.com/kelseyhightower/envconfig"

	"github.com/klantreis/journey/internal/envdoc"
	"github.com/klantreis/journey/services/collector"
)

// TestConfigDocumented keeps docs/configuration.md in step with Config.
func TestConfigDocumented(t *testing.T) {
	_, doc, err := envdoc.FindDoc()
	if err != nil {
		t.Fatal(err)
	}
	missing, err := envdoc.Missing(&collector.Config{}, doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		t.Fatalf("docs/configuration.md lacks %v", missing)
	}
}

// TestDefaultsMatchEnvconfig: DefaultSettings is what the environment
// defaults give.
func TestDefaultsMatchEnvconfig(t *testing.T) {
	var cfg collector.Config
	if err := envconfig.Process("JOURNEY_TEST_UNSET", &cfg); err != nil {
		t.Fatal(err)
	}
	got, want := cfg.Collector, collector.DefaultSettings()
	if got.Addr != want.Addr || got.MaxRequestBytes != want.MaxRequestBytes || got.MaxEventBytes != want.MaxEventBytes ||
		got.MaxBatchEvents != want.MaxBatchEvents || got.Rate != want.Rate || got.Burst != want.Burst ||
		got.AckTimeout != want.AckTimeout || got.RetryAfter != want.RetryAfter || got.MaxPendingAcks != want.MaxPendingAcks ||
		got.MaxHeaders != want.MaxHeaders || got.MaxHeaderBytes != want.MaxHeaderBytes || got.MaxConcurrent != want.MaxConcurrent ||
		got.BrowserMaxBytes != want.BrowserMaxBytes || got.BrowserRate != want.BrowserRate || got.Drain != want.Drain ||
		len(got.WebhookOrigins) != 1 || got.WebhookOrigins[0] != "*" {
		t.Fatalf("envconfig defaults %+v differ from DefaultSettings %+v", got, want)
	}
}
