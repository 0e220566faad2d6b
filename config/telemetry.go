package config

import (
	"net"
	"strconv"
	"time"
)

// Telemetry defaults.
const (
	DefaultTelemetryListen           = "127.0.0.1:9464"
	DefaultReadyCircuitOpenThreshold = 60 * time.Second
	DefaultBacklogInterval           = 15 * time.Second
	// TelemetryListenOff as telemetry.listen disables the HTTP server.
	TelemetryListenOff = "off"
)

// Telemetry configures metrics, health endpoints and tracing.
type Telemetry struct {
	// Listen is the address of the HTTP server for /metrics, /healthz and /readyz.
	// Default 127.0.0.1:9464 (localhost only). "off" disables the server. Any other host
	// works (":9464" for every interface) but the endpoints have no authentication.
	Listen string `yaml:"listen"`
	// ReadyCircuitOpenThreshold is how long a sink's circuit may stay open (or half-open)
	// before /readyz reports the relay not ready. Default 60s.
	ReadyCircuitOpenThreshold Duration `yaml:"ready_circuit_open_threshold"`
	// BacklogInterval is how often the backlog gauges are refreshed with one bounded
	// query. Default 15s; at least 1s.
	BacklogInterval Duration `yaml:"backlog_interval"`
	// Tracing configures OpenTelemetry traces.
	Tracing Tracing `yaml:"tracing"`
	// OTLPMetrics pushes the same metrics over OTLP, besides /metrics.
	OTLPMetrics OTLPMetrics `yaml:"otlp_metrics"`
}

// Tracing configures the OpenTelemetry publish spans. The exporter is set with the
// standard OTEL_* environment variables (OTEL_EXPORTER_OTLP_ENDPOINT,
// OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_EXPORTER_OTLP_HEADERS, OTEL_SERVICE_NAME, ...).
type Tracing struct {
	// Enabled turns OTLP trace export on or off. Default: on when
	// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, off
	// otherwise; OTEL_TRACES_EXPORTER=none and OTEL_SDK_DISABLED=true always turn it off.
	Enabled *bool `yaml:"enabled"`
}

// OTLPMetrics configures OTLP metrics export. The exporter is set with the standard
// OTEL_* environment variables, the interval with OTEL_METRIC_EXPORT_INTERVAL.
type OTLPMetrics struct {
	// Enabled turns OTLP metrics export on or off. Default: on when
	// OTEL_METRICS_EXPORTER=otlp, off otherwise (Prometheus scraping /metrics is the
	// primary interface).
	Enabled *bool `yaml:"enabled"`
}

func (t *Telemetry) defaults() {
	if t.Listen == "" {
		t.Listen = DefaultTelemetryListen
	}
	if t.ReadyCircuitOpenThreshold == 0 {
		t.ReadyCircuitOpenThreshold = Duration(DefaultReadyCircuitOpenThreshold)
	}
	if t.BacklogInterval == 0 {
		t.BacklogInterval = Duration(DefaultBacklogInterval)
	}
}

func (t *Telemetry) validate(bad func(field, format string, args ...any)) {
	if t.Listen != TelemetryListenOff {
		_, port, err := net.SplitHostPort(t.Listen)
		if err != nil {
			bad("telemetry.listen", "want host:port (like 127.0.0.1:9464) or \"off\", got %q", t.Listen)
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			bad("telemetry.listen", "port must be a number from 0 to 65535, got %q", port)
		}
	}
	if t.ReadyCircuitOpenThreshold.D() < time.Second {
		bad("telemetry.ready_circuit_open_threshold", "must be at least 1s, got %s", t.ReadyCircuitOpenThreshold)
	}
	if t.BacklogInterval.D() < time.Second {
		bad("telemetry.backlog_interval", "must be at least 1s, got %s", t.BacklogInterval)
	}
}

// ServerEnabled reports whether the telemetry HTTP server runs.
func (t *Telemetry) ServerEnabled() bool { return t.Listen != TelemetryListenOff }
