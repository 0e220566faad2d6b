package telemetry

import (
	"context"
	"fmt"
	"os"
	"strings"

	promotel "go.opentelemetry.io/contrib/bridges/prometheus"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/prometheus/client_golang/prometheus"
)

// OTLPMetricsEnabled decides whether to push metrics over OTLP. setting is
// telemetry.otlp_metrics.enabled (nil when unset). OTEL_SDK_DISABLED=true and
// OTEL_METRICS_EXPORTER=none always win; otherwise an explicit setting wins; otherwise it
// is on only when OTEL_METRICS_EXPORTER=otlp, since /metrics is the primary interface.
func OTLPMetricsEnabled(setting *bool, getenv Getenv) bool {
	if getenv == nil {
		getenv = os.Getenv
	}
	exporter := strings.TrimSpace(getenv("OTEL_METRICS_EXPORTER"))
	if envTrue(getenv("OTEL_SDK_DISABLED")) || strings.EqualFold(exporter, "none") {
		return false
	}
	if setting != nil {
		return *setting
	}
	return exporter == "otlp"
}

// OTLPMetricsConfig configures NewOTLPMetrics.
type OTLPMetricsConfig struct {
	// Gatherer is read at each export: the same metrics /metrics serves. Required.
	Gatherer prometheus.Gatherer
	// ServiceVersion is the service.version resource attribute.
	ServiceVersion string
	// Exporter replaces the OTLP exporter (for tests).
	Exporter sdkmetric.Exporter
	// Getenv defaults to os.Getenv.
	Getenv Getenv
}

// NewOTLPMetrics pushes the Prometheus registry's metrics over OTLP through the
// OpenTelemetry Prometheus bridge, every OTEL_METRIC_EXPORT_INTERVAL (default 60s). The
// exporter is configured like the trace exporter, with the OTEL_EXPORTER_OTLP_(METRICS_)*
// variables. Shutdown on the returned provider exports once more and stops.
func NewOTLPMetrics(ctx context.Context, cfg OTLPMetricsConfig) (*sdkmetric.MeterProvider, error) {
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	exp := cfg.Exporter
	if exp == nil {
		var err error
		switch p := otlpProtocol(getenv, "METRICS"); p {
		case "grpc":
			exp, err = otlpmetricgrpc.New(ctx)
		case "http/protobuf":
			exp, err = otlpmetrichttp.New(ctx)
		default:
			return nil, fmt.Errorf("telemetry: OTLP protocol %q is not supported for metrics; use http/protobuf or grpc", p)
		}
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTLP metric exporter: %w", err)
		}
	}
	res, err := Resource(ctx, cfg.ServiceVersion)
	if err != nil {
		return nil, err
	}
	reader := sdkmetric.NewPeriodicReader(exp,
		sdkmetric.WithProducer(promotel.NewMetricProducer(promotel.WithGatherer(cfg.Gatherer))))
	return sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader), sdkmetric.WithResource(res)), nil
}
