package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/conveyorhq/conveyor/sink"
	"github.com/conveyorhq/conveyor/sink/amqp"
	"github.com/conveyorhq/conveyor/sink/natsjs"
)

// profileInfo is a saved CPU profile and the head of its `go tool pprof -top`.
type profileInfo struct {
	Name string `json:"name"`
	File string `json:"file"`
	Top  string `json:"top"`
}

// profileRelay drains s to NATS with the relay in process (same defaults as the binary,
// the same NATS sink) under a CPU profile: where the relay's own time goes.
func (b *bench) profileRelay(ctx context.Context, s seed) {
	if err := b.nats.resetStream(ctx); err != nil {
		b.report.Notes = append(b.report.Notes, "profile: "+err.Error())
		return
	}
	defer func() { _ = b.nats.js.DeleteStream(context.WithoutCancel(ctx), streamName) }()
	sk, err := natsjs.New(ctx, natsjs.Config{URL: b.nats.url, Stream: streamName}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.report.Notes = append(b.report.Notes, "profile: "+err.Error())
		return
	}
	defer sk.Close(context.WithoutCancel(ctx))
	path := b.resultPath("relay-nats.cpu.prof")
	res, err := b.inProcessDrain(ctx, s, map[string]sink.Sink{"nats": sk}, "events.{event_type}", path, "nats", b.nats.count)
	if err != nil {
		b.report.Notes = append(b.report.Notes, "profile: "+err.Error())
		return
	}
	b.logf("  in process: %d events in %.1fs = %.0f/s, %.1f CPU s", res.Events, res.Seconds, res.EventsPerSec, res.CPUSeconds)
	b.report.InProcess = &res
	b.addProfile("relay → NATS, in process", path)
	if res.HeapProfile != "" {
		b.addProfile(fmt.Sprintf("relay → NATS, in process: in-use heap at its peak (%.0f MB)", res.PeakHeapInuseMB),
			filepath.Join(b.resultsDir, res.HeapProfile), "-sample_index=inuse_space")
	}
}

// profileRelayRabbit drains s to RabbitMQ with the relay in process under a CPU profile:
// the relay's own cost per message on the broker where it is furthest from its peer.
func (b *bench) profileRelayRabbit(ctx context.Context, s seed) {
	if b.rabbit == nil {
		return
	}
	if err := b.rabbit.prepare(ctx); err != nil {
		b.report.Notes = append(b.report.Notes, "profile rabbitmq: "+err.Error())
		return
	}
	defer b.rabbit.cleanup(context.WithoutCancel(ctx))
	sk, err := amqp.New(ctx, amqp.Config{URL: b.rabbit.url}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.report.Notes = append(b.report.Notes, "profile rabbitmq: "+err.Error())
		return
	}
	defer sk.Close(context.WithoutCancel(ctx))
	path := b.resultPath("relay-rabbitmq.cpu.prof")
	res, err := b.inProcessDrain(ctx, s, map[string]sink.Sink{"rabbitmq": sk}, "/"+b.rabbit.queue, path, "rabbitmq", b.rabbit.count)
	if err != nil {
		b.report.Notes = append(b.report.Notes, "profile rabbitmq: "+err.Error())
		return
	}
	b.logf("  in process → RabbitMQ: %d events in %.1fs = %.0f/s, %.1f CPU s", res.Events, res.Seconds, res.EventsPerSec, res.CPUSeconds)
	b.addProfile("relay → RabbitMQ, in process", path)
}

// addProfile records a profile with the top of `go tool pprof -top -cum`; that and the
// flat -top are saved next to it as .top.txt.
func (b *bench) addProfile(name, path string, extra ...string) {
	pprof := func(args ...string) string {
		args = append(extra, args...)
		out, err := exec.Command("go", append(append([]string{"tool", "pprof"}, args...), path)...).CombinedOutput()
		top := strings.TrimSpace(string(out))
		if i := strings.Index(top, "Duration:"); i >= 0 {
			top = top[i:]
		} else if i := strings.Index(top, "Type:"); i >= 0 {
			top = top[i:]
		}
		if err != nil {
			top = "go tool pprof failed: " + err.Error() + ": " + top
		}
		return top
	}
	top := pprof("-top", "-cum", "-nodecount=25")
	flat := pprof("-top", "-nodecount=40")
	_ = os.WriteFile(strings.TrimSuffix(path, ".prof")+".top.txt", []byte(top+"\n\n"+flat+"\n"), 0o644)
	b.report.Profiles = append(b.report.Profiles, profileInfo{Name: name, File: path, Top: top})
}
