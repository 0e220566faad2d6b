package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// report is everything one run measured, written as JSON and rendered as Markdown.
type report struct {
	Started         time.Time         `json:"started"`
	Seconds         float64           `json:"seconds"`
	Command         string            `json:"command"`
	Sections        []string          `json:"sections"`
	Sizes           sizes             `json:"sizes"`
	Machine         machine           `json:"machine"`
	Versions        map[string]string `json:"versions"`
	LoadAvgStart    string            `json:"loadavg_start"`
	LoadAvgEnd      string            `json:"loadavg_end"`
	AvgPayloadBytes float64           `json:"avg_payload_bytes"`
	Seeds           []seedInfo        `json:"seeds"`
	Limits          []limitResult     `json:"limits"`
	Relay           []drainResult     `json:"relay"`
	Load            []loadResult      `json:"load"`
	MaxSustained    float64           `json:"max_sustained_events_per_s"`
	// MaxSustainedAchieved is the highest rate a writer reached while the relay kept
	// pace; MaxSustainedLimitedBy says whether that run's writer fell short of its target.
	MaxSustainedAchieved  float64           `json:"max_sustained_achieved_events_per_s"`
	MaxSustainedLimitedBy string            `json:"max_sustained_limited_by,omitempty"`
	Shapes                []drainResult     `json:"shapes"`
	WriteCost             *writeCostResult  `json:"write_cost,omitempty"`
	Peers                 []peerResult      `json:"peers"`
	InProcess             *limitResult      `json:"relay_in_process,omitempty"`
	Profiles              []profileInfo     `json:"profiles"`
	Targets               []target          `json:"targets"`
	NotMeasured           map[string]string `json:"not_measured,omitempty"`
	Notes                 []string          `json:"notes,omitempty"`
}

type machine struct {
	CPUs     int     `json:"cpus"`
	CPUModel string  `json:"cpu_model"`
	MemoryGB float64 `json:"memory_gb"`
	Kernel   string  `json:"kernel"`
}

type seedInfo struct {
	Name    string  `json:"name"`
	Events  int     `json:"events"`
	Keys    string  `json:"keys"`
	Seconds float64 `json:"seconds"`
}

// target is one of the goals, compared with what was measured.
type target struct {
	Goal     string `json:"goal"`
	Measured string `json:"measured"`
	Met      *bool  `json:"met"` // nil: not measured
}

func newReport(ctx context.Context, b *bench, command string) *report {
	r := &report{Started: time.Now().UTC(), Command: command, Sizes: b.sz, LoadAvgStart: loadAvg(),
		Versions: map[string]string{}, NotMeasured: map[string]string{}}
	r.Machine = machine{CPUs: runtime.NumCPU(), CPUModel: cpuModel(), MemoryGB: memGB(), Kernel: readTrim("/proc/sys/kernel/osrelease")}
	v := r.Versions
	v["go"] = runtime.Version()
	v["relay"] = cmdOut(b.relayBin, "version")
	v["nats-server"] = natsVersion(os.Getenv("CONVEYOR_TEST_NATS_SERVER"))
	if conn, err := pgx.Connect(ctx, b.db.adminDSN); err == nil {
		var s string
		if conn.QueryRow(ctx, `SELECT version()`).Scan(&s) == nil {
			v["postgres"] = s
		}
		conn.Close(ctx)
	}
	if libs := os.Getenv("CONVEYOR_TEST_KAFKA_LIBS"); libs != "" {
		if m, _ := filepath.Glob(filepath.Join(libs, "kafka-server-[0-9]*.jar")); len(m) > 0 {
			v["kafka"] = strings.TrimSuffix(strings.TrimPrefix(filepath.Base(m[0]), "kafka-server-"), ".jar") + " (KRaft, one node)"
		}
	}
	if ctl := os.Getenv("CONVEYOR_TEST_RABBITMQCTL"); ctl != "" {
		v["rabbitmq"] = cmdOut(ctl, "-q", "version")
	}
	v["python"] = cmdOut(b.python, "--version")
	v["django"] = cmdOut(b.python, "-c", "import django; print(django.get_version())")
	return r
}

func (r *report) notMeasured(what, why string) { r.NotMeasured[what] = why }

func loadAvg() string {
	f := strings.Fields(readTrim("/proc/loadavg"))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func readTrim(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

func cpuModel() string {
	for line := range strings.SplitSeq(readTrim("/proc/cpuinfo"), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func memGB() float64 {
	for line := range strings.SplitSeq(readTrim("/proc/meminfo"), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(rest), "%f", &kb)
			return kb / 1024 / 1024
		}
	}
	return 0
}

func cmdOut(name string, args ...string) string {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return strings.TrimSpace(lastLines(string(out), 1))
}

// compareToLimits sets a relay run's ratio to the slower of the database limit and the
// limit of its broker.
func (r *report) compareToLimits(d *drainResult) {
	var dbl, brl *limitResult
	for i := range r.Limits {
		l := &r.Limits[i]
		if l.Error != "" {
			continue
		}
		switch {
		case l.Kind == "database":
			dbl = l
		case l.Name == d.Broker:
			brl = l
		}
	}
	slower := dbl
	if slower == nil || (brl != nil && brl.EventsPerSec < slower.EventsPerSec) {
		slower = brl
	}
	if slower != nil && d.EventsPerSec > 0 {
		d.LimitName, d.Limit, d.Ratio = slower.Name, slower.EventsPerSec, d.EventsPerSec/slower.EventsPerSec
		if slower.Kind == "database" {
			d.LimitName = "database"
		}
	}
}

func (b *bench) finishProfiles() {
	for _, l := range b.report.Limits {
		if l.Profile != "" {
			b.addProfile("database limit (null sink), in process", filepath.Join(b.resultsDir, l.Profile))
		}
	}
}

// finish evaluates the targets.
func (r *report) finish(b *bench) {
	b.finishProfiles()
	r.Seconds = time.Since(r.Started).Seconds()
	r.LoadAvgEnd = loadAvg()
	met := func(ok bool) *bool { return &ok }
	add := func(goal, measured string, ok *bool) {
		r.Targets = append(r.Targets, target{Goal: goal, Measured: measured, Met: ok})
	}
	for _, d := range r.Relay {
		if d.Error != "" || d.Limit == 0 {
			add(fmt.Sprintf("relay → %s ≥ 0.5× the slower limit", d.Broker), "not measured: "+d.Error, nil)
			continue
		}
		add(fmt.Sprintf("relay → %s ≥ 0.5× the slower limit", d.Broker),
			fmt.Sprintf("%.2f× (%.0f/s vs %s %.0f/s)", d.Ratio, d.EventsPerSec, d.LimitName, d.Limit), met(d.Ratio >= 0.5))
	}
	var at1k *loadResult
	for i := range r.Load {
		if l := &r.Load[i]; l.TargetRate == 1000 && l.Wakeup == "NOTIFY" && l.Error == "" {
			at1k = l
		}
	}
	if at1k != nil {
		add("p99 commit → ack ≤ 25 ms at 1k/s with NOTIFY", fmt.Sprintf("%.1f ms (%s)", at1k.P99ms, at1k.Writer), met(at1k.P99ms <= 25))
	} else {
		add("p99 commit → ack ≤ 25 ms at 1k/s with NOTIFY", "not measured", nil)
	}
	for _, s := range r.Shapes {
		if strings.HasPrefix(s.Name, "one hot key") {
			if s.Error != "" {
				add("one hot key ≥ 2k events/s, in order", "not measured: "+s.Error, nil)
				continue
			}
			v := 0
			if s.OrderViolations != nil {
				v = *s.OrderViolations
			}
			add("one hot key ≥ 2k events/s, in order", fmt.Sprintf("%.0f/s, %d order violations", s.EventsPerSec, v), met(s.EventsPerSec >= 2000 && v == 0))
		}
	}
	for _, d := range r.Relay {
		if d.Error == "" {
			add(fmt.Sprintf("peak RSS ≤ 150 MB draining %s (→ %s)", human(d.Events), d.Broker), fmt.Sprintf("%.0f MB", d.PeakRSSMB), met(d.PeakRSSMB <= 150))
		}
	}
	if wc := r.WriteCost; wc != nil && wc.Sections["one_row"] != nil {
		one := wc.Sections["one_row"]
		orm, ormPub := one["1 row (ORM)"].MeanUs, one["1 row (ORM) + publish()"].MeanUs
		sql, sqlPub := one["1 row (SQL)"].MeanUs, one["1 row (SQL) + publish()"].MeanUs
		if orm > 0 && sql > 0 {
			add("one publish() adds ≤ 1.5× to a one-row transaction",
				fmt.Sprintf("%.2f× with the row written by the ORM (%.0f vs %.0f µs); %.2f× with a raw SQL row (%.0f vs %.0f µs)",
					ormPub/orm, ormPub, orm, sqlPub/sql, sqlPub, sql), met(ormPub/orm <= 1.5))
		}
	} else {
		add("one publish() adds ≤ 1.5× to a one-row transaction", "not measured", nil)
	}
	for _, p := range r.Peers {
		goal := map[string]float64{"nats": 3, "rabbitmq": 10}[p.Broker]
		name := fmt.Sprintf("relay ≥ %.0f× %s", goal, strings.Split(p.Name, " ")[0])
		if p.Error != "" || p.Ratio == 0 {
			why := p.Error
			if why == "" {
				why = "no relay run to the same broker"
			}
			add(name, "not measured: "+why, nil)
			continue
		}
		add(name, fmt.Sprintf("%.1f× (%.0f/s vs %.0f/s)", p.Ratio, p.RelayEventsPerSec, p.EventsPerSec), met(p.Ratio >= goal))
	}
}

func human(n int) string {
	if n >= 1_000_000 && n%1_000_000 == 0 {
		return fmt.Sprintf("%dM", n/1_000_000)
	}
	if n >= 1000 && n%1000 == 0 {
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

// write saves the timestamped and latest Markdown and JSON files.
func (r *report) write(b *bench) (string, string, error) {
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", "", err
	}
	md := []byte(r.markdown())
	mdPath, jsPath := b.resultPath("bench.md"), b.resultPath("bench.json")
	for path, data := range map[string][]byte{mdPath: md, jsPath: js,
		filepath.Join(b.resultsDir, "latest.md"): md, filepath.Join(b.resultsDir, "latest.json"): js} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return "", "", err
		}
	}
	return mdPath, jsPath, nil
}

func f0(v float64) string { return fmt.Sprintf("%.0f", v) }

func errOr(errMsg string, s string) string {
	if errMsg != "" {
		return "✗ " + strings.ReplaceAll(errMsg, "|", "/")
	}
	return s
}

// markdown renders the report.
func (r *report) markdown() string {
	var w strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&w, format+"\n", args...) }
	p("# Conveyor benchmark, %s", r.Started.Format("2006-01-02 15:04 UTC"))
	p("")
	p("- **Command:** `%s`", r.Command)
	p("- **Machine:** %d cores, %s, %.1f GB memory, Linux %s", r.Machine.CPUs, r.Machine.CPUModel, r.Machine.MemoryGB, r.Machine.Kernel)
	p("- **Load average** at start %s, at end %s (1, 5, 15 min)", r.LoadAvgStart, r.LoadAvgEnd)
	keys := slices.Sorted(mapKeys(r.Versions))
	var vs []string
	for _, k := range keys {
		vs = append(vs, fmt.Sprintf("%s %s", k, r.Versions[k]))
	}
	p("- **Versions:** %s", strings.Join(vs, "; "))
	p("- **Events:** `%s` from `%s`, %.0f bytes of JSON on average, UUIDv7 ids in order; size preset `%s`; run took %.0f s",
		eventType, eventSource, r.AvgPayloadBytes, r.Sizes.Name, r.Seconds)
	p("- Every service shares the one machine: PostgreSQL, the brokers, the relay and the bench's own writers and counters.")
	p("")
	has := func(sec string) bool { return slices.Contains(r.Sections, sec) }
	if has("limits") || has("relay") {
		r.limitsMarkdown(p)
	}
	if has("relay") {
		r.relayMarkdown(p)
	}
	if has("load") {
		r.loadMarkdown(p)
	}
	if has("shapes") {
		r.shapesMarkdown(p)
	}
	if has("writecost") {
		r.writeCostMarkdown(p)
	}
	if has("peers") {
		r.peersMarkdown(p)
	}
	r.targetsMarkdown(p)
	return w.String()
}

type printer func(format string, args ...any)

func (r *report) limitsMarkdown(p printer) {
	p("## 1. Limits (the denominators)")
	p("")
	p("| limit | events | seconds | events/s | client CPU s | machine busy | PostgreSQL CPU s | broker CPU s |")
	p("|---|---|---|---|---|---|---|---|")
	for _, l := range r.Limits {
		p("| %s | %d | %.1f | %s | %.1f | %.0f%% | %.1f | %.1f |", l.Name, l.Events, l.Seconds, errOr(l.Error, f0(l.EventsPerSec)),
			l.CPUSeconds, l.CPU.MachineBusyPct, l.CPU.PostgresS, l.CPU.BrokerS)
	}
	for _, l := range r.Limits {
		if c := l.Cycles; c != nil {
			p("")
			p("Database limit cycles: %d cycles of %.0f rows; per cycle, claim %.1f ms, publish %.1f ms, settle %.1f ms (2 workers in parallel). %d claims, %d of them empty; %.1f s in Claim, %.1f s in Settle, of %.1f s.",
				c.Cycles, c.RowsPerCycle, c.ClaimMs, c.PublishMs, c.SettleMs, c.Claims, c.EmptyClaims, c.ClaimTotalS, c.SettleTotalS, l.Seconds)
		}
	}
	p("")
}

func (r *report) relayMarkdown(p printer) {
	p("## 2. Relay throughput (`bin/conveyor run`, default settings, %s-event backlog over %d keys)", human(r.Sizes.Events), r.Sizes.Keys)
	p("")
	p("| run | events/s | × slower limit | relay CPU s per 1M | peak RSS MB | machine busy | PostgreSQL CPU s | broker CPU s |")
	p("|---|---|---|---|---|---|---|---|")
	for _, d := range r.Relay {
		p("| %s | %s | %s | %.1f | %.0f | %.0f%% | %.1f | %.1f |", d.Name, errOr(d.Error, f0(d.EventsPerSec)), ratio(d), d.CPUPer1M, d.PeakRSSMB,
			d.CPU.MachineBusyPct, d.CPU.PostgresS, d.CPU.BrokerS)
	}
	p("")
}

func (r *report) loadMarkdown(p printer) {
	p("## 3. Sustained load: commit → JetStream ack (NATS)")
	p("")
	p("| rate | writer | wake-up | achieved/s | events | p50 ms | p99 ms | p99.9 ms | max ms | tail drained after | relay CPU | kept up |")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, l := range r.Load {
		p("| %s | %s | %s | %.0f | %d | %.1f | %.1f | %.1f | %.0f | %.0f ms | %.0f%% | %s |", l.Name, l.Writer, l.Wakeup, l.Achieved, l.Written,
			l.P50ms, l.P99ms, l.P999ms, l.MaxMs, l.DrainAfterMs, l.RelayCPUPct, errOr(l.Error, keptUp(l)))
	}
	p("")
	kept := "none of the NOTIFY rates tried"
	if r.MaxSustained > 0 {
		kept = fmt.Sprintf("**%.0f events/s**", r.MaxSustained)
	}
	p("Highest target rate kept up with NOTIFY: %s. Highest rate the writers reached while the relay kept pace: **%.0f events/s**%s.",
		kept, r.MaxSustainedAchieved, map[string]string{"writer": " (there the writers, not the relay, fell short of the target)", "": ""}[r.MaxSustainedLimitedBy])
	p("")
}

func (r *report) shapesMarkdown(p printer) {
	p("## 4. Shapes (→ NATS)")
	p("")
	p("| shape | relays | events | events/s | relay CPU s per 1M | peak RSS MB | order violations |")
	p("|---|---|---|---|---|---|---|")
	for _, s := range r.Shapes {
		ov := "n/a"
		if s.OrderViolations != nil {
			ov = fmt.Sprint(*s.OrderViolations)
		}
		p("| %s | %d | %d | %s | %.1f | %.0f | %s |", s.Name, s.Relays, s.Events, errOr(s.Error, f0(s.EventsPerSec)), s.CPUPer1M, s.PeakRSSMB, ov)
	}
	p("")
}

func (r *report) writeCostMarkdown(p printer) {
	p("## 5. Write-side cost (Django, psycopg 3, PostgreSQL)")
	p("")
	if wc := r.WriteCost; wc == nil {
		p("Not measured.")
	} else if wc.Error != "" {
		p("Not measured: %s", wc.Error)
	} else {
		p("| transaction | n | mean µs | p50 µs | p99 µs | vs the first of its pair |")
		p("|---|---|---|---|---|---|")
		for _, sec := range []struct {
			name, base string
			others     []string
		}{
			{"one_row", "1 row (SQL)", []string{"1 row (SQL) + publish()", "1 row (SQL) + the event by plain SQL"}},
			{"one_row", "1 row (ORM)", []string{"1 row (ORM) + publish()"}},
			{"batch", "100 × publish()", []string{"publish_many(100)"}},
			{"notify", "trigger disabled", []string{"with NOTIFY trigger"}},
		} {
			rows := wc.Sections[sec.name]
			base := rows[sec.base].MeanUs
			for _, label := range append([]string{sec.base}, sec.others...) {
				t, ok := rows[label]
				if !ok || base == 0 {
					continue
				}
				p("| %s | %d | %.0f | %.0f | %.0f | %.2f× |", label, t.N, t.MeanUs, t.P50Us, t.P99Us, t.MeanUs/base)
			}
		}
	}
	p("")
}

func (r *report) peersMarkdown(p printer) {
	p("## 6. Peers (same database, same broker, same events)")
	p("")
	p("| peer | broker | events | events/s | CPU s | peak RSS MB | relay events/s | relay × peer |")
	p("|---|---|---|---|---|---|---|---|")
	for _, pr := range r.Peers {
		p("| %s | %s | %d | %s | %.1f | %.0f | %.0f | %.1f× |", pr.Name, pr.Broker, pr.Events, errOr(pr.Error, f0(pr.EventsPerSec)),
			pr.CPUSeconds, pr.MaxRSSMB, pr.RelayEventsPerSec, pr.Ratio)
	}
	for _, pr := range r.Peers {
		if pr.Note != "" {
			p("")
			p("- %s: %s", pr.Name, pr.Note)
		}
	}
	p("")
}

func (r *report) targetsMarkdown(p printer) {
	p("## 7. Targets")
	p("")
	p("| target | measured | met |")
	p("|---|---|---|")
	for _, t := range r.Targets {
		m := "not measured"
		if t.Met != nil {
			m = map[bool]string{true: "✓", false: "✗"}[*t.Met]
		}
		p("| %s | %s | %s |", t.Goal, strings.ReplaceAll(t.Measured, "|", "/"), m)
	}
	if len(r.NotMeasured) > 0 {
		p("")
		p("## Not measured")
		p("")
		for _, k := range slices.Sorted(mapKeys(r.NotMeasured)) {
			p("- **%s:** %s", k, r.NotMeasured[k])
		}
	}
	if len(r.Profiles) > 0 {
		p("")
		p("## CPU profiles")
		for _, pr := range r.Profiles {
			p("")
			p("%s: `%s` (`go tool pprof -top %s`)", pr.Name, filepath.Base(pr.File), filepath.Base(pr.File))
			p("")
			p("```")
			p("%s", lastLinesKeep(pr.Top, 22))
			p("```")
		}
	}
	if r.InProcess != nil {
		p("")
		p("The profiled in-process run moved %d events in %.1f s (%.0f/s, %.1f CPU s).", r.InProcess.Events, r.InProcess.Seconds, r.InProcess.EventsPerSec, r.InProcess.CPUSeconds)
		if c := r.InProcess.Cycles; c != nil {
			p("Its cycles: %d of %.0f rows; per cycle, claim %.1f ms, publish %.1f ms, settle %.1f ms. %d claims, %d of them empty; %.1f s in Claim, %.1f s in Settle.",
				c.Cycles, c.RowsPerCycle, c.ClaimMs, c.PublishMs, c.SettleMs, c.Claims, c.EmptyClaims, c.ClaimTotalS, c.SettleTotalS)
		}
	}
	if len(r.Seeds) > 0 {
		p("")
		p("Seeded backlogs (COPY, then VACUUM ANALYZE; each run gets a fresh file copy):")
		for _, s := range r.Seeds {
			p("- %s: %d events, %s, %.1f s", s.Name, s.Events, s.Keys, s.Seconds)
		}
	}
	for _, n := range r.Notes {
		p("")
		p("- %s", n)
	}
}

func ratio(d drainResult) string {
	if d.Ratio == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f× %s", d.Ratio, d.LimitName)
}

func keptUp(l loadResult) string {
	switch l.Limited {
	case "writer":
		return "no: writers reached only this rate; relay kept pace"
	case "relay":
		return "no: relay fell behind"
	}
	return "yes"
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func lastLinesKeep(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}
