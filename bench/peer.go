package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// peerResult is one peer tool moving the same events from the same database to the same
// broker.
type peerResult struct {
	Name         string  `json:"name"`
	Broker       string  `json:"broker"`
	Events       int     `json:"events"`
	Seconds      float64 `json:"seconds"`
	EventsPerSec float64 `json:"events_per_s"`
	CPUSeconds   float64 `json:"cpu_s"`
	MaxRSSMB     float64 `json:"max_rss_mb"`
	// RelayEventsPerSec is the relay binary's rate to the same broker (relay
	// throughput section); Ratio is RelayEventsPerSec / EventsPerSec.
	RelayEventsPerSec float64 `json:"relay_events_per_s,omitempty"`
	Ratio             float64 `json:"relay_ratio,omitempty"`
	Note              string  `json:"note,omitempty"`
	Error             string  `json:"error,omitempty"`
}

func (b *bench) peers(ctx context.Context, s seed) {
	b.report.Peers = append(b.report.Peers, b.watermillPeer(ctx, s), b.outboxPatternPeer(ctx, s))
	for i := range b.report.Peers {
		p := &b.report.Peers[i]
		for _, r := range b.report.Relay {
			if r.Broker == p.Broker && r.Error == "" && p.EventsPerSec > 0 {
				p.RelayEventsPerSec, p.Ratio = r.EventsPerSec, r.EventsPerSec/p.EventsPerSec
			}
		}
	}
}

// watermillPeer builds and runs bench/peers/watermill (its own Go module, so watermill
// never enters the project's go.mod).
func (b *bench) watermillPeer(ctx context.Context, s seed) peerResult {
	n := min(b.sz.Watermill, s.events)
	res := peerResult{Name: "watermill-sql Forwarder → watermill-nats (JetStream)", Broker: "nats", Events: n,
		Note: "watermill v1.5.1, watermill-sql v4.1.2 (default PostgreSQL schema and offsets adapter), watermill-nats v2.1.3 (JetStream, TrackMsgId); bench/peers/watermill"}
	fail := func(err error) peerResult { res.Error = err.Error(); b.logf("  watermill: %v", err); return res }
	bin := filepath.Join(b.scratch, "watermill-peer")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./watermill")
	build.Dir = filepath.Join(b.root, "bench", "peers")
	build.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("go build bench/peers/watermill: %v: %s", err, strings.TrimSpace(string(out))))
	}
	run := "bench_peer"
	if err := b.db.create(ctx, run, s.name); err != nil {
		return fail(err)
	}
	defer func() { _ = b.db.drop(context.WithoutCancel(ctx), run) }()
	if err := b.nats.resetStream(ctx); err != nil {
		return fail(err)
	}
	defer func() { _ = b.nats.js.DeleteStream(context.WithoutCancel(ctx), streamName) }()
	cmd := exec.CommandContext(ctx, bin, "-db", b.db.url(run), "-nats", b.nats.url, "-stream", streamName, "-events", fmt.Sprint(n))
	out, err := cmd.Output()
	if err != nil {
		return fail(fmt.Errorf("%v: %s", err, stderrOf(err)))
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return fail(fmt.Errorf("bad output %q: %w", out, err))
	}
	b.logf("  watermill: %d events in %.1fs = %.0f/s", res.Events, res.Seconds, res.EventsPerSec)
	return res
}

// outboxPatternPeer runs django-outbox-pattern's publisher over RabbitMQ's STOMP plugin,
// enabled on the private node for the run (bench/stomp.sh) and disabled afterwards.
func (b *bench) outboxPatternPeer(ctx context.Context, s seed) peerResult {
	n := min(b.sz.PythonPeer, s.events)
	res := peerResult{Name: "django-outbox-pattern publisher (STOMP)", Broker: "rabbitmq", Events: n,
		Note: "django-outbox-pattern 3.2.1 as shipped: STOMP SEND without receipts (no broker confirm) and without persistent:true, one UPDATE per row inside one transaction per pass"}
	fail := func(err error) peerResult {
		res.Error = err.Error()
		b.logf("  django-outbox-pattern: %v", err)
		return res
	}
	if b.rabbit == nil {
		return fail(fmt.Errorf("RabbitMQ is not available (see not measured)"))
	}
	if _, err := os.Stat(b.peerPython); err != nil {
		return fail(fmt.Errorf("peer virtualenv missing (%v): bench/run.sh creates it from bench/peers/requirements.txt", err))
	}
	port, err := freePort()
	if err != nil {
		return fail(err)
	}
	stomp := filepath.Join(b.root, "bench", "stomp.sh")
	if out, err := exec.CommandContext(ctx, stomp, "enable", fmt.Sprint(port)).CombinedOutput(); err != nil {
		return fail(fmt.Errorf("enable RabbitMQ STOMP plugin: %v: %s", err, strings.TrimSpace(string(out))))
	}
	defer func() {
		if out, err := exec.Command(stomp, "disable").CombinedOutput(); err != nil {
			b.logf("  disable RabbitMQ STOMP plugin: %v: %s", err, out)
		}
	}()
	run := "bench_peer"
	if err := b.db.create(ctx, run, s.name); err != nil {
		return fail(err)
	}
	defer func() { _ = b.db.drop(context.WithoutCancel(ctx), run) }()
	if err := b.rabbit.prepare(ctx); err != nil {
		return fail(err)
	}
	defer b.rabbit.cleanup(context.WithoutCancel(ctx))
	script := filepath.Join(b.root, "bench", "peers", "outbox_pattern.py")
	args := []string{"--database", run, "--events", fmt.Sprint(n), "--queue", b.rabbit.queue, "--stomp-port", fmt.Sprint(port)}
	if out, err := exec.CommandContext(ctx, b.peerPython, append([]string{script, "prepare"}, args...)...).CombinedOutput(); err != nil {
		return fail(fmt.Errorf("prepare: %v: %s", err, lastLines(string(out), 5)))
	}
	out, err := exec.CommandContext(ctx, b.peerPython, append([]string{script, "run"}, args...)...).Output()
	if err != nil {
		return fail(fmt.Errorf("run: %v: %s", err, stderrOf(err)))
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return fail(fmt.Errorf("bad output %q: %w", out, err))
	}
	// The peer does not wait for the broker; count what arrived.
	var got int64
	for range 50 {
		if got, err = b.rabbit.count(ctx); err == nil && got >= int64(n) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got != int64(n) {
		return fail(fmt.Errorf("the queue holds %d of %d messages after the run (%v)", got, n, err))
	}
	b.logf("  django-outbox-pattern: %d events in %.1fs = %.0f/s", res.Events, res.Seconds, res.EventsPerSec)
	return res
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return lastLines(string(ee.Stderr), 5)
	}
	return ""
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
