// Command watermill is the watermill-sql Forwarder peer of `make bench`: the same events,
// from the same PostgreSQL database, to the same NATS JetStream stream.
//
// It copies the first -events rows of conveyor_event into the forwarder's own table as
// watermill envelopes (what forwarder.Publisher would write inside the business
// transaction), then runs forwarder.Forwarder (watermill-sql subscriber -> watermill-nats
// JetStream publisher, Nats-Msg-Id = message UUID) and times it until the stream holds
// every message. It prints one JSON line.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	wmsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/components/forwarder"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const topic = "forwarder_topic"

type result struct {
	Events       int     `json:"events"`
	Seconds      float64 `json:"seconds"`
	EventsPerSec float64 `json:"events_per_s"`
	CPUSeconds   float64 `json:"cpu_s"`
	MaxRSSMB     float64 `json:"max_rss_mb"`
	SeedSeconds  float64 `json:"seed_s"`
}

func main() {
	dsn := flag.String("db", "", "PostgreSQL URL of a database holding the benchmark's conveyor_event rows")
	natsURL := flag.String("nats", "", "NATS URL")
	stream := flag.String("stream", "BENCH", "JetStream stream capturing events.>")
	events := flag.Int("events", 10000, "events to forward")
	flag.Parse()
	if err := run(*dsn, *natsURL, *stream, *events); err != nil {
		log.Fatalf("watermill peer: %v", err)
	}
}

func run(dsn, natsURL, stream string, events int) error {
	ctx := context.Background()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	logger := watermill.NopLogger{}
	sub, err := wmsql.NewSubscriber(wmsql.BeginnerFromStdSQL(db), wmsql.SubscriberConfig{
		SchemaAdapter:    wmsql.DefaultPostgreSQLSchema{},
		OffsetsAdapter:   wmsql.DefaultPostgreSQLOffsetsAdapter{},
		InitializeSchema: true,
	}, logger)
	if err != nil {
		return err
	}
	if err := sub.SubscribeInitialize(topic); err != nil {
		return fmt.Errorf("initialize schema: %w", err)
	}
	t0 := time.Now()
	// One envelope per event, as forwarder.Publisher wraps a message: destination topic,
	// uuid, payload (base64, as encoding/json writes []byte) and metadata.
	res, err := db.ExecContext(ctx, `
INSERT INTO "watermill_`+topic+`" (uuid, payload, metadata, transaction_id)
SELECT id::text,
       json_build_object('destination_topic', 'events.' || event_type, 'uuid', id::text,
                         'payload', translate(encode(convert_to(data::text, 'UTF8'), 'base64'), E'\n', ''),
                         'metadata', json_build_object('key', coalesce(key, ''), 'type', event_type, 'source', source)),
       '{}'::json, pg_current_xact_id()
  FROM (SELECT * FROM conveyor_event ORDER BY id LIMIT $1) e`, events)
	if err != nil {
		return fmt.Errorf("seed envelopes: %w", err)
	}
	if n, _ := res.RowsAffected(); n != int64(events) {
		return fmt.Errorf("seeded %d envelopes, want %d", n, events)
	}
	if _, err := db.ExecContext(ctx, `VACUUM ANALYZE "watermill_`+topic+`"`); err != nil {
		return err
	}
	seeded := time.Since(t0)

	nc, err := nats.Connect(natsURL)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	str, err := js.Stream(ctx, stream)
	if err != nil {
		return err
	}
	pub, err := wmnats.NewPublisher(wmnats.PublisherConfig{URL: natsURL,
		JetStream: wmnats.JetStreamConfig{TrackMsgId: true}}, logger)
	if err != nil {
		return err
	}
	fwd, err := forwarder.NewForwarder(sub, pub, logger, forwarder.Config{ForwarderTopic: topic})
	if err != nil {
		return err
	}
	cpu0 := cpu()
	start := time.Now()
	go func() { _ = fwd.Run(ctx) }()
	deadline := start.Add(30 * time.Minute)
	for {
		info, err := str.Info(ctx)
		if err == nil && info.State.Msgs >= uint64(events) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out: %d of %d messages on the stream", info.State.Msgs, events)
		}
		time.Sleep(100 * time.Millisecond)
	}
	elapsed := time.Since(start)
	cpuUsed := cpu() - cpu0
	_ = fwd.Close()
	_ = pub.Close()
	return json.NewEncoder(os.Stdout).Encode(result{Events: events, Seconds: elapsed.Seconds(),
		EventsPerSec: float64(events) / elapsed.Seconds(), CPUSeconds: cpuUsed,
		MaxRSSMB: vmHWM(), SeedSeconds: seeded.Seconds()})
}

// vmHWM is this process's peak resident memory in MB. Not rusage's maxrss: started by
// vfork, a child inherits its parent's high-water mark there.
func vmHWM() float64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

func cpu() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}
