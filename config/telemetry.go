package config

// Telemetry configures metrics, health endpoints and tracing.
type Telemetry struct {
	// Listen is the address of the HTTP server for /metrics, /healthz and /readyz.
	// Default 127.0.0.1:9464 (localhost only); "" after defaults never happens, use
	// "off" to disable the server.
	Listen string `yaml:"listen"`
}

func (t *Telemetry) defaults() {
	if t.Listen == "" {
		t.Listen = "127.0.0.1:9464"
	}
}

func (t *Telemetry) validate(bad func(field, format string, args ...any)) {
	_ = bad
}
