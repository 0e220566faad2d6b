package telemetry_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/conveyorhq/conveyor/relay"
	"github.com/conveyorhq/conveyor/telemetry"
)

var metricName = regexp.MustCompile(`\bconveyor_[a-zA-Z0-9_:]+`)

// expressionKeys hold PromQL (or series selectors) in dashboards, rules and rule tests.
var expressionKeys = []string{"expr", "query", "definition", "series"}

// collectNames walks a decoded JSON or YAML document and gathers the conveyor_* names in
// the values of expressionKeys.
func collectNames(v any, names map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if s, ok := val.(string); ok && slices.Contains(expressionKeys, k) {
				for _, n := range metricName.FindAllString(s, -1) {
					names[n] = true
				}
				continue
			}
			collectNames(val, names)
		}
	case []any:
		for _, e := range x {
			collectNames(e, names)
		}
	}
}

// TestDeployMetricsExist checks that every metric the Grafana dashboard and the Prometheus
// rules use is in /metrics after a relay run, so a renamed metric cannot silently blank a
// panel or disarm an alert.
func TestDeployMetricsExist(t *testing.T) {
	t.Parallel()
	b := failingBundle(t)
	m := telemetry.NewMetrics(telemetry.MetricsConfig{Version: "test", Routes: b.routes(), Sinks: b.sinkNames()})
	r := b.relay(relay.Options{Hooks: m})
	m.WatchBreakers(telemetry.RelayBreakers(r, b.sinkNames()))
	m.SetRelayUp(true)
	b.drain(r)
	require.NoError(t, (&telemetry.BacklogPoller{Source: b.st, Metrics: m}).Poll(context.Background()))
	_, base := startServer(t, telemetry.ServerConfig{Gatherer: m.Registry()})
	_, body := get(t, base+"/metrics")
	exposed := metricNames(body)

	for _, pattern := range []string{"../deploy/grafana/*.json", "../deploy/prometheus/*.yml"} {
		files, err := filepath.Glob(pattern)
		require.NoError(t, err)
		require.NotEmpty(t, files, pattern)
		for _, f := range files {
			raw, err := os.ReadFile(f)
			require.NoError(t, err)
			var doc any
			if filepath.Ext(f) == ".json" {
				require.NoError(t, json.Unmarshal(raw, &doc), f)
			} else {
				require.NoError(t, yaml.Unmarshal(raw, &doc), f)
			}
			used := map[string]bool{}
			collectNames(doc, used)
			if filepath.Base(f) != "prometheus.yml" {
				require.NotEmpty(t, used, "%s uses no conveyor_* metric: is the parser still right?", f)
			}
			for n := range used {
				require.True(t, exposed[n], "%s uses %s, which /metrics does not expose", f, n)
			}
		}
	}
}

// TestAlertRules runs promtool on the rules and their unit tests when it is installed
// (Debian: the prometheus package).
func TestAlertRules(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed")
	}
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}, {"check", "config", "prometheus.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "../deploy/prometheus"
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "promtool %v:\n%s", args, out)
	}
}
