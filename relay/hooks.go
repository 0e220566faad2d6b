package relay

import (
	"time"

	"github.com/conveyorhq/conveyor"

	"github.com/conveyorhq/conveyor/sink"
)

// Hooks observe the relay without the core importing a metrics library (franz-go's
// plug-in style). Implementations must be safe for concurrent use and fast.
type Hooks interface {
	// OnBatch reports one claim-publish-settle cycle.
	OnBatch(claimed int, claim, publish, settle time.Duration)
	// OnPublished reports an acknowledged event and its commit-to-ack latency.
	OnPublished(route, sinkName string, latency time.Duration)
	// OnFailure reports a failed publish by kind.
	OnFailure(route, sinkName string, kind sink.Kind)
	// OnRetry reports a retry scheduled with backoff.
	OnRetry(route string)
	// OnDead reports an event moved to dead.
	OnDead(route string)
	// OnLeaseLost reports rows whose settle was refused by fencing.
	OnLeaseLost(n int)
	// OnBreaker reports a circuit state change.
	OnBreaker(sinkName string, state BreakerState)
}

// Tracer starts a span for each publish. The relay never imports OpenTelemetry; the
// telemetry package implements this.
type Tracer interface {
	// StartPublish starts the publish span of one event, as a child of the trace context
	// captured in ev.Headers (traceparent). It returns the headers to send instead of the
	// captured ones (the new span's traceparent, so consumers continue the trace) and a
	// function to end the span with the publish result.
	StartPublish(ev *conveyor.Event, route, sinkName, destination string) (headers map[string]string, end func(error))
}

// NopHooks ignores everything.
type NopHooks struct{}

func (NopHooks) OnBatch(int, time.Duration, time.Duration, time.Duration) {}
func (NopHooks) OnPublished(string, string, time.Duration)                {}
func (NopHooks) OnFailure(string, string, sink.Kind)                      {}
func (NopHooks) OnRetry(string)                                           {}
func (NopHooks) OnDead(string)                                            {}
func (NopHooks) OnLeaseLost(int)                                          {}
func (NopHooks) OnBreaker(string, BreakerState)                           {}
