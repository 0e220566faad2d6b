// Command bench is `make bench`: the relay's throughput and latency measured against the
// machine's limits (the database alone, each broker alone) and against peer tools, in
// one run on the same services. It writes a Markdown table and a JSON file under
// bench/results/ (timestamped, plus latest.md and latest.json).
//
// Run it through bench/run.sh (what the Makefile calls), which loads the services'
// environment and builds the relay; `go run ./bench -h` lists the flags. It is a main
// package with no tests, so `go test ./...` never runs it.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// sizes are the scenario sizes of one run.
type sizes struct {
	Name        string        `json:"name"`
	Events      int           `json:"events"`        // the big backlog: limits and relay throughput
	Keys        int           `json:"keys"`          // ordering keys of the keyed backlogs
	ShapeEvents int           `json:"shape_events"`  // all-NULL keys and 1/2/4 relays
	HotEvents   int           `json:"hot_events"`    // one hot key
	LoadTime    time.Duration `json:"load_duration"` // each fixed-rate run
	StepTime    time.Duration `json:"step_duration"` // each step of the search for the highest rate
	Watermill   int           `json:"watermill_events"`
	PythonPeer  int           `json:"python_peer_events"`
	WriteTx     int           `json:"write_cost_transactions"`
}

var presets = map[string]sizes{
	"full": {Name: "full", Events: 1_000_000, Keys: 10_000, ShapeEvents: 200_000, HotEvents: 50_000,
		LoadTime: 20 * time.Second, StepTime: 10 * time.Second, Watermill: 100_000, PythonPeer: 20_000, WriteTx: 2000},
	"small": {Name: "small", Events: 20_000, Keys: 1_000, ShapeEvents: 10_000, HotEvents: 3_000,
		LoadTime: 4 * time.Second, StepTime: 3 * time.Second, Watermill: 3_000, PythonPeer: 1_000, WriteTx: 200},
}

// bench holds the run's services and settings.
type bench struct {
	sz         sizes
	root       string // repository root
	relayBin   string
	python     string // the project's virtualenv python
	peerPython string // the peer virtualenv's python
	scratch    string
	resultsDir string
	stamp      string
	db         *database
	nats       *natsServer
	kafka      *kafkaBroker
	rabbit     *rabbitBroker
	brokerPIDs map[string]int
	only       map[string]bool
	loadOnly   string // -load
	relayYAML  string // -relay-yaml: extra lines under relay: in every relay binary's config
	report     *report
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (b *bench) resultPath(name string) string {
	return filepath.Join(b.resultsDir, b.stamp+"-"+name)
}

func (b *bench) want(section string) bool { return len(b.only) == 0 || b.only[section] }

func main() {
	size := flag.String("size", cmp.Or(os.Getenv("BENCH_SIZE"), "full"), "full (the issue's sizes: 1M events over 10k keys) or small (a quick run)")
	events := flag.Int("events", 0, "override the big backlog's size")
	only := flag.String("only", os.Getenv("BENCH_ONLY"), "comma-separated sections to run: writecost,limits,relay,shapes,load,peers,profile (default all)")
	results := flag.String("results", "bench/results", "where to write the report")
	relayBin := flag.String("relay", "bin/conveyor", "the relay binary")
	command := flag.String("command", os.Getenv("BENCH_COMMAND"), "the command line to record in the report")
	pgParams := flag.String("pg-params", os.Getenv("BENCH_PG_PARAMS"), "extra connection parameters for every relay, as a URL query (e.g. jit=off), for analysis")
	relayYAML := flag.String("relay-yaml", "", "extra relay settings for every relay binary, ;-separated YAML lines (e.g. 'claim_cooldown: 0s'), for analysis")
	brokerSet := flag.String("brokers", "", "comma-separated brokers to measure: nats,kafka,rabbitmq (default all), for analysis")
	loadOnly := flag.String("load", "", "sustained load: run only these, comma-separated writer:rate:wakeup (django|go, notify|poll), for analysis")
	limitSeed := flag.String("limit-seed", "keyed", "backlog of the database limit: keyed, null or hot (null and hot are for analysis)")
	flag.Parse()
	sz, ok := presets[*size]
	if !ok {
		fmt.Fprintf(os.Stderr, "bench: -size must be full or small, got %q\n", *size)
		os.Exit(2)
	}
	if *events > 0 {
		sz.Events = *events
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, sz, *only, *results, *relayBin, cmp.Or(*command, strings.Join(os.Args, " ")), *limitSeed, *pgParams, *loadOnly, *brokerSet, *relayYAML); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, sz sizes, only, results, relayBin, command, limitSeed, pgParams, loadOnly, brokerSet, relayYAML string) error {
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	b := &bench{sz: sz, root: root, resultsDir: results, stamp: time.Now().UTC().Format("20060102-150405"),
		python: filepath.Join(root, ".venv", "bin", "python"), peerPython: filepath.Join(root, ".cache", "bench", "peer-venv", "bin", "python"),
		only: map[string]bool{}, loadOnly: loadOnly}
	for line := range strings.SplitSeq(relayYAML, ";") {
		if line = strings.TrimSpace(line); line != "" {
			b.relayYAML += "  " + line + "\n"
		}
	}
	for s := range strings.SplitSeq(only, ",") {
		if s = strings.TrimSpace(s); s != "" {
			b.only[s] = true
		}
	}
	if b.relayBin, err = filepath.Abs(relayBin); err != nil {
		return err
	}
	if _, err := os.Stat(b.relayBin); err != nil {
		return fmt.Errorf("relay binary: %w (run `make build`)", err)
	}
	dsn := os.Getenv("CONVEYOR_TEST_PG_DSN")
	natsBin := os.Getenv("CONVEYOR_TEST_NATS_SERVER")
	if dsn == "" || natsBin == "" {
		return errors.New(`CONVEYOR_TEST_PG_DSN / CONVEYOR_TEST_NATS_SERVER are not set: run through bench/run.sh or eval "$(scripts/services.sh env)"`)
	}
	if err := os.MkdirAll(results, 0o755); err != nil {
		return err
	}
	if b.scratch, err = os.MkdirTemp("/var/tmp", "conveyor-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(b.scratch)
	// A private copy: other builds may replace bin/conveyor while the bench runs.
	if err := copyFile(b.relayBin, filepath.Join(b.scratch, "conveyor"), 0o755); err != nil {
		return err
	}
	b.relayBin = filepath.Join(b.scratch, "conveyor")
	b.db = &database{adminDSN: dsn, template: cmp.Or(os.Getenv("CONVEYOR_TEST_PG_TEMPLATE"), "conveyor_template")}
	if pgParams != "" {
		if b.db.params, err = url.ParseQuery(pgParams); err != nil {
			return fmt.Errorf("-pg-params: %w", err)
		}
	}
	b.report = newReport(ctx, b, command)
	if pgParams != "" {
		b.report.Notes = append(b.report.Notes, "every relay connected with the extra parameters "+pgParams+" (-pg-params)")
	}
	for _, sec := range []string{"writecost", "limits", "relay", "shapes", "load", "peers", "profile"} {
		if b.want(sec) {
			b.report.Sections = append(b.report.Sections, sec)
		}
	}
	b.logf("size %s: %d events over %d keys; results in %s (load average at start %s)", sz.Name, sz.Events, sz.Keys, results, b.report.LoadAvgStart)

	if b.nats, err = startNATS(ctx, natsBin, b.scratch); err != nil {
		return err
	}
	defer b.nats.stop()
	b.brokerPIDs = brokerPIDs(b.nats.pid())
	brokers := []broker{&natsBroker{srv: b.nats}}
	if addr := os.Getenv("CONVEYOR_TEST_KAFKA_BROKERS"); addr != "" {
		if b.kafka, err = newKafkaBroker(strings.Split(addr, ",")); err == nil {
			brokers = append(brokers, b.kafka)
		} else {
			b.report.notMeasured("kafka", fmt.Sprintf("cannot connect to Kafka at %s: %v", addr, err))
		}
	} else {
		b.report.notMeasured("kafka", "CONVEYOR_TEST_KAFKA_BROKERS is not set (scripts/services.sh up kafka)")
	}
	if u := os.Getenv("CONVEYOR_TEST_AMQP_URL"); u != "" {
		if b.rabbit, err = newRabbitBroker(u); err == nil {
			brokers = append(brokers, b.rabbit)
		} else {
			b.report.notMeasured("rabbitmq", fmt.Sprintf("cannot connect to RabbitMQ: %v", err))
		}
	} else {
		b.report.notMeasured("rabbitmq", "CONVEYOR_TEST_AMQP_URL is not set (scripts/services.sh up rabbitmq)")
	}

	if brokerSet != "" { // -brokers: only these
		keep := brokers[:0]
		for _, br := range brokers {
			if slices.Contains(strings.Split(brokerSet, ","), br.name()) {
				keep = append(keep, br)
			}
		}
		brokers = keep
	}

	seeds := map[string]seed{
		"keyed": {name: "bench_seed_keyed", events: sz.Events, mode: keysRoundRobin, keys: sz.Keys},
		"shape": {name: "bench_seed_shape", events: sz.ShapeEvents, mode: keysRoundRobin, keys: sz.Keys},
		"null":  {name: "bench_seed_null", events: sz.ShapeEvents, mode: keysNull},
		"hot":   {name: "bench_seed_hot", events: sz.HotEvents, mode: keysHot},
	}
	built := map[string]bool{}
	need := func(name string) (seed, error) {
		s := seeds[name]
		if built[name] {
			return s, nil
		}
		b.logf("seeding %s: %d events", s.name, s.events)
		d, err := b.db.build(ctx, s)
		if err != nil {
			return s, err
		}
		built[name] = true
		if b.report.AvgPayloadBytes == 0 && s.mode == keysRoundRobin {
			if v, err := avgDataBytes(ctx, b.db.url(s.name)); err == nil {
				b.report.AvgPayloadBytes = v
			}
		}
		b.report.Seeds = append(b.report.Seeds, seedInfo{Name: s.name, Events: s.events, Seconds: d.Seconds(),
			Keys: map[keyMode]string{keysRoundRobin: fmt.Sprintf("%d keys", s.keys), keysHot: "one key", keysNull: "NULL"}[s.mode]})
		b.logf("  seeded in %.1fs (%.0f rows/s)", d.Seconds(), float64(s.events)/d.Seconds())
		return s, nil
	}
	defer func() {
		for name := range built {
			_ = b.db.drop(context.WithoutCancel(ctx), seeds[name].name)
		}
	}()

	// 5. Write-side cost first, while the database is small and quiet.
	if b.want("writecost") {
		b.logf("write-side cost (Python)")
		b.writeCost(ctx)
	}
	// 1. Limits.
	if b.want("limits") || b.want("relay") {
		keyed, err := need("keyed")
		if err != nil {
			return err
		}
		b.logf("limits")
		dbSeed := keyed
		if limitSeed != "keyed" {
			if dbSeed, err = need(limitSeed); err != nil {
				return err
			}
			b.report.Notes = append(b.report.Notes, "database limit measured on the "+dbSeed.name+" backlog (-limit-seed)")
		}
		b.report.Limits = append(b.report.Limits, b.databaseLimit(ctx, dbSeed))
		for _, br := range brokers {
			b.report.Limits = append(b.report.Limits, b.brokerLimit(ctx, br, sz.Events, sz.Keys))
		}
	}
	// 2. Relay throughput, the real binary.
	if b.want("relay") {
		keyed, _ := need("keyed")
		b.logf("relay throughput: %d events, bin/conveyor", keyed.events)
		for _, br := range brokers {
			r := b.drain(ctx, "PostgreSQL → "+br.name(), keyed, br, 1, false)
			b.report.compareToLimits(&r)
			b.report.Relay = append(b.report.Relay, r)
		}
	}
	// 4. Shapes.
	if b.want("shapes") {
		b.logf("shapes")
		br := &natsBroker{srv: b.nats}
		hot, err := need("hot")
		if err != nil {
			return err
		}
		b.report.Shapes = append(b.report.Shapes, b.drain(ctx, "one hot key (strictly ordered)", hot, br, 1, true))
		null, err := need("null")
		if err != nil {
			return err
		}
		b.report.Shapes = append(b.report.Shapes, b.drain(ctx, "all keys NULL", null, br, 1, false))
		shape, err := need("shape")
		if err != nil {
			return err
		}
		for _, k := range []int{1, 2, 4} {
			b.report.Shapes = append(b.report.Shapes, b.drain(ctx, fmt.Sprintf("%d relay(s), %d keys", k, sz.Keys), shape, br, k, true))
		}
	}
	// 3. Sustained load and latency.
	if b.want("load") {
		b.logf("sustained load (%s per run)", sz.LoadTime)
		b.sustainedLoad(ctx)
	}
	// 6. Peers.
	if b.want("peers") {
		shape, err := need("shape")
		if err != nil {
			return err
		}
		b.logf("peers")
		b.peers(ctx, shape)
	}
	// 7. Profile of the relay publishing to NATS, in process.
	if b.want("profile") {
		shape, err := need("shape")
		if err != nil {
			return err
		}
		b.logf("CPU profile: relay → NATS in process, %d events", shape.events)
		b.profileRelay(ctx, shape)
		if slices.Contains(brokers, broker(b.rabbit)) {
			b.logf("CPU profile: relay → RabbitMQ in process, %d events", shape.events)
			b.profileRelayRabbit(ctx, shape)
		}
	}
	b.report.finish(b)
	md, js, err := b.report.write(b)
	if err != nil {
		return err
	}
	b.logf("wrote %s and %s", md, js)
	fmt.Println(b.report.markdown())
	return ctx.Err()
}

// sustainedLoad runs the fixed-rate scenarios, then steps the rate up until the relay
// no longer keeps up.
func (b *bench) sustainedLoad(ctx context.Context) {
	d := b.sz.LoadTime
	runs := []struct {
		writer string
		rate   float64
		listen bool
	}{
		{writerDjango, 1000, true},
		{writerDjango, 1000, false},
		{writerDjango, 5000, true}, // the rate; Python alone needs more than 2 cores for it
		{writerGo, 5000, true},
		{writerGo, 5000, false},
	}
	if b.loadOnly != "" { // -load: only these runs, for analysis
		for spec := range strings.SplitSeq(b.loadOnly, ",") {
			w, rest, _ := strings.Cut(spec, ":")
			rateS, mode, _ := strings.Cut(rest, ":")
			rate, err := strconv.ParseFloat(rateS, 64)
			if err != nil || (w != "django" && w != "go") || (mode != "notify" && mode != "poll") {
				b.logf("-load %q: want writer:rate:wakeup, e.g. django:1000:notify or go:2000:poll", spec)
				return
			}
			writer := map[string]string{"django": writerDjango, "go": writerGo}[w]
			b.report.Load = append(b.report.Load, b.runLoad(ctx, fmt.Sprintf("%.0f/s", rate), writer, rate, mode == "notify", d))
		}
		return
	}
	for _, r := range runs {
		if r.writer == writerDjango && r.rate > 1000 && b.sz.Name != "full" {
			continue // its writers reach ~1,000/s: its 20k events would take 20 s of a smoke run
		}
		b.report.Load = append(b.report.Load, b.runLoad(ctx, fmt.Sprintf("%.0f/s", r.rate), r.writer, r.rate, r.listen, d))
	}
	// The search: step up from the highest rate kept up, stop at the first miss. A
	// fixed-rate NOTIFY run that missed already bounds it.
	steps := []float64{2000, 3000, 4000, 7500, 10000, 15000, 20000, 30000}
	var best float64
	ceiling := steps[len(steps)-1] + 1
	for _, l := range b.report.Load {
		if l.Wakeup != "NOTIFY" || l.Writer != writerGo {
			continue
		}
		if l.KeptUp {
			best = max(best, l.TargetRate)
		} else {
			ceiling = min(ceiling, l.TargetRate)
		}
	}
	for _, rate := range steps {
		if ctx.Err() != nil || rate <= best || rate >= ceiling {
			continue
		}
		r := b.runLoad(ctx, fmt.Sprintf("step %.0f/s", rate), writerGo, rate, true, b.sz.StepTime)
		b.report.Load = append(b.report.Load, r)
		if !r.KeptUp {
			break
		}
		best = rate
	}
	// What the relay provably kept pace with: the highest rate a writer achieved while
	// the relay stayed caught up (with NOTIFY).
	for _, l := range b.report.Load {
		if l.Wakeup == "NOTIFY" && l.RelayKeptPace && l.Achieved > b.report.MaxSustainedAchieved {
			b.report.MaxSustainedAchieved = l.Achieved
			b.report.MaxSustainedLimitedBy = l.Limited
		}
	}
	b.report.MaxSustained = best
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
