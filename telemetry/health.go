package telemetry

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conveyorhq/conveyor/relay"
)

// Health defaults.
const (
	DefaultPingTTL              = 5 * time.Second
	DefaultPingTimeout          = 2 * time.Second
	DefaultCircuitOpenThreshold = 60 * time.Second
)

// Health answers the liveness and readiness probes. The relay is ready when the database
// answers (a cached ping) and no sink's circuit has been open longer than
// CircuitOpenThreshold.
type Health struct {
	// Ping checks the database, e.g. Store.Check. Required.
	Ping func(ctx context.Context) error
	// PingTTL is how long a ping result is reused, so frequent probes cost one query per
	// TTL. Default DefaultPingTTL.
	PingTTL time.Duration
	// PingTimeout bounds one ping. Default DefaultPingTimeout.
	PingTimeout time.Duration
	// CircuitOpenThreshold is how long a circuit may stay open before the relay is not
	// ready. Default DefaultCircuitOpenThreshold.
	CircuitOpenThreshold time.Duration
	// Secrets are scrubbed from the errors the report shows.
	Secrets []string

	breakers atomic.Pointer[BreakerSource]
	now      func() time.Time // tests

	mu       sync.Mutex // held during a ping, so concurrent probes share one
	pingedAt time.Time
	pingErr  error
}

// WatchBreakers makes readiness consider the circuits of src (set once the relay exists).
func (h *Health) WatchBreakers(src BreakerSource) { h.breakers.Store(&src) }

// ReadyReport is the /readyz response body.
type ReadyReport struct {
	Ready bool `json:"ready"`
	// Problems names what is wrong, one line each; empty when ready.
	Problems []string `json:"problems,omitempty"`
	Database struct {
		OK        bool      `json:"ok"`
		Error     string    `json:"error,omitempty"`
		CheckedAt time.Time `json:"checked_at"`
	} `json:"database"`
	Circuits []CircuitReport `json:"circuits"`
}

// CircuitReport is one sink's circuit in a ReadyReport.
type CircuitReport struct {
	Sink        string  `json:"sink"`
	State       string  `json:"state"`
	OpenSeconds float64 `json:"open_seconds,omitempty"`
}

func (h *Health) clock() time.Time {
	if h.now != nil {
		return h.now()
	}
	return time.Now()
}

// ping returns the cached database check, refreshing it when older than PingTTL.
func (h *Health) ping(ctx context.Context) (time.Time, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.pingedAt.IsZero() && h.clock().Sub(h.pingedAt) < cmp.Or(h.PingTTL, DefaultPingTTL) {
		return h.pingedAt, h.pingErr
	}
	// The result is shared with other probes: one client hanging up must not fail it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cmp.Or(h.PingTimeout, DefaultPingTimeout))
	defer cancel()
	err := h.Ping(ctx)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("no answer within %s: %w", cmp.Or(h.PingTimeout, DefaultPingTimeout), err)
	}
	h.pingedAt, h.pingErr = h.clock(), err
	return h.pingedAt, err
}

// Ready evaluates readiness.
func (h *Health) Ready(ctx context.Context) *ReadyReport {
	rep := &ReadyReport{Circuits: []CircuitReport{}}
	at, err := h.ping(ctx)
	rep.Database.CheckedAt = at.UTC()
	rep.Database.OK = err == nil
	if err != nil {
		rep.Database.Error = Scrub(err.Error(), h.Secrets)
		rep.Problems = append(rep.Problems, "database: "+rep.Database.Error)
	}
	threshold := cmp.Or(h.CircuitOpenThreshold, DefaultCircuitOpenThreshold)
	if src := h.breakers.Load(); src != nil {
		now := h.clock()
		for _, b := range (*src)() {
			c := CircuitReport{Sink: b.Sink, State: b.State.String()}
			if b.State != relay.BreakerClosed && !b.Since.IsZero() {
				open := now.Sub(b.Since)
				c.OpenSeconds = open.Seconds()
				if open > threshold {
					rep.Problems = append(rep.Problems, fmt.Sprintf("sink %s: circuit %s for %s (threshold %s); the broker is unreachable",
						b.Sink, c.State, open.Round(time.Second), threshold))
				}
			}
			rep.Circuits = append(rep.Circuits, c)
		}
	}
	rep.Ready = len(rep.Problems) == 0
	return rep
}

// ServeReadyz answers 200 when ready and 503 otherwise, with a ReadyReport as JSON.
func (h *Health) ServeReadyz(w http.ResponseWriter, r *http.Request) {
	rep := h.Ready(r.Context())
	code := http.StatusOK
	if !rep.Ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, rep)
}

// ServeHealthz answers 200 while the process is alive. It checks nothing else on
// purpose: a liveness probe that fails on a database outage would restart every relay
// for a problem a restart cannot fix.
func ServeHealthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
