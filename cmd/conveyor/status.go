package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/conveyorhq/conveyor/config"
	"github.com/conveyorhq/conveyor/store"
)

func statusCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", "Show how many events are pending, in flight, published, dead and discarded, by event\n"+
		"type and by route; the age of the oldest pending event; the relays holding leases; and\n"+
		"the circuit breakers of the relay whose /metrics --metrics-url points at.", stderr)
	files := configFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	metricsURL := fs.String("metrics-url", "auto", "a relay's metrics endpoint to read circuit states from; \"auto\" derives it\nfrom telemetry.listen, \"\" skips it")
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := loadConfig(*files)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, c, newLogger(c, io.Discard))
	if err != nil {
		return scrubbed(c, err)
	}
	defer st.Close()
	if err := st.Check(ctx); err != nil {
		return scrubbed(c, err)
	}
	s, err := st.Stats(ctx)
	if err != nil {
		return scrubbed(c, err)
	}
	var ov *store.Overview
	if op, ok := st.(store.Operator); ok {
		if ov, err = op.Overview(ctx); err != nil {
			return scrubbed(c, err)
		}
	}
	url := *metricsURL
	if url == "auto" {
		url = defaultMetricsURL(c)
	}
	circuits, circErr := scrapeCircuits(ctx, url)
	rep := buildStatus(c, s, ov, url, circuits, circErr)
	if *asJSON {
		return writeJSON(stdout, rep)
	}
	rep.print(stdout)
	return nil
}

// statusReport is the JSON output of status. The first five keys are stable since the
// first release.
type statusReport struct {
	Pending       int64   `json:"pending"`
	InFlight      int64   `json:"in_flight"`
	Published     int64   `json:"published"`
	Dead          int64   `json:"dead"`
	OldestPending float64 `json:"oldest_pending_seconds"`
	// Dead counts dead events that are not discarded; Discarded the rest.
	Discarded   int64         `json:"discarded"`
	BlockedKeys int64         `json:"blocked_keys"`
	ByType      []statusCount `json:"by_type"`
	ByRoute     []statusCount `json:"by_route"`
	Leases      []statusLease `json:"leases"`
	// Circuits is null when unknown; CircuitsNote says why.
	Circuits     []statusCircuit `json:"circuits"`
	CircuitsNote string          `json:"circuits_note,omitempty"`
}

type statusCount struct {
	EventType     string  `json:"event_type,omitempty"`
	Route         string  `json:"route"`
	Pending       int64   `json:"pending"`
	InFlight      int64   `json:"in_flight"`
	Published     int64   `json:"published"`
	Dead          int64   `json:"dead"`
	Discarded     int64   `json:"discarded"`
	OldestPending float64 `json:"oldest_pending_seconds"`
}

type statusLease struct {
	RelayID string    `json:"relay_id"`
	Events  int64     `json:"events"`
	Until   time.Time `json:"until"`
}

type statusCircuit struct {
	Sink        string  `json:"sink"`
	State       string  `json:"state"`
	OpenSeconds float64 `json:"open_seconds"`
}

func buildStatus(c *config.Config, s *store.Stats, ov *store.Overview, url string, circuits []statusCircuit, circErr error) *statusReport {
	rep := &statusReport{Pending: s.Pending, InFlight: s.InFlight, Published: s.Published, Dead: s.Dead,
		OldestPending: s.OldestPending.Seconds(), ByType: []statusCount{}, ByRoute: []statusCount{}, Leases: []statusLease{}}
	if ov != nil {
		rep.Dead, rep.BlockedKeys = 0, ov.BlockedKeys
		byRoute := map[string]*statusCount{}
		for _, t := range ov.ByType {
			route := routeFor(c, t.EventType)
			rep.Dead += t.Dead
			rep.Discarded += t.Discarded
			rep.ByType = append(rep.ByType, statusCount{EventType: t.EventType, Route: route, Pending: t.Pending,
				InFlight: t.InFlight, Published: t.Published, Dead: t.Dead, Discarded: t.Discarded,
				OldestPending: t.OldestPending.Seconds()})
			r := byRoute[route]
			if r == nil {
				r = &statusCount{Route: route}
				byRoute[route] = r
			}
			r.Pending += t.Pending
			r.InFlight += t.InFlight
			r.Published += t.Published
			r.Dead += t.Dead
			r.Discarded += t.Discarded
			r.OldestPending = max(r.OldestPending, t.OldestPending.Seconds())
		}
		for _, r := range byRoute {
			rep.ByRoute = append(rep.ByRoute, *r)
		}
		slices.SortFunc(rep.ByRoute, func(a, b statusCount) int { return strings.Compare(a.Route, b.Route) })
		for _, l := range ov.Leases {
			rep.Leases = append(rep.Leases, statusLease{RelayID: l.RelayID, Events: l.Events, Until: l.Until})
		}
	}
	switch {
	case url == "":
		rep.CircuitsNote = "unknown: no relay metrics endpoint given (--metrics-url)"
	case circErr != nil:
		rep.CircuitsNote = fmt.Sprintf("unknown: %v", circErr)
	default:
		rep.Circuits = circuits
		rep.CircuitsNote = "from " + url
	}
	return rep
}

// routeFor names the route an event type goes to. Routes that also match on source or
// headers make it depend on the event: their names are listed with |, up to the first
// route that matches on the type alone.
func routeFor(c *config.Config, eventType string) string {
	var names []string
	for _, r := range c.Routes {
		if ok, _ := path.Match(r.EventType, eventType); !ok {
			continue
		}
		names = append(names, r.Name)
		if r.Source == "" && len(r.Headers) == 0 {
			break
		}
	}
	if len(names) == 0 {
		return "(no route)"
	}
	return strings.Join(names, "|")
}

func (r *statusReport) print(w io.Writer) {
	fmt.Fprintf(w, "pending    %d (in flight %d)\npublished  %d\ndead       %d (discarded %d, keys blocked %d)\noldest pending age  %s\n",
		r.Pending, r.InFlight, r.Published, r.Dead, r.Discarded, r.BlockedKeys, (time.Duration(r.OldestPending * float64(time.Second))).Round(time.Millisecond))
	table := func(title, first string, rows []statusCount, name func(statusCount) string) {
		if len(rows) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s\n  %-28s %-16s %9s %9s %10s %7s %9s %8s\n", title, first, "ROUTE", "PENDING", "IN FLIGHT", "PUBLISHED", "DEAD", "DISCARDED", "OLDEST")
		for _, c := range rows {
			fmt.Fprintf(w, "  %-28s %-16s %9d %9d %10d %7d %9d %8s\n", shorten(name(c), 28), shorten(c.Route, 16), c.Pending, c.InFlight,
				c.Published, c.Dead, c.Discarded, age(c.Pending, c.OldestPending))
		}
	}
	table("by event type:", "TYPE", r.ByType, func(c statusCount) string { return c.EventType })
	if len(r.ByRoute) > 0 {
		fmt.Fprintf(w, "\nby route:\n  %-16s %9s %9s %10s %7s %9s %8s\n", "ROUTE", "PENDING", "IN FLIGHT", "PUBLISHED", "DEAD", "DISCARDED", "OLDEST")
		for _, c := range r.ByRoute {
			fmt.Fprintf(w, "  %-16s %9d %9d %10d %7d %9d %8s\n", shorten(c.Route, 16), c.Pending, c.InFlight, c.Published, c.Dead, c.Discarded,
				age(c.Pending, c.OldestPending))
		}
	}
	if len(r.Leases) == 0 {
		fmt.Fprintln(w, "\nrelays holding leases: none")
	} else {
		fmt.Fprintln(w, "\nrelays holding leases:")
		for _, l := range r.Leases {
			fmt.Fprintf(w, "  %-40s %6d events, until %s\n", l.RelayID, l.Events, l.Until.UTC().Format(time.RFC3339))
		}
	}
	if r.Circuits == nil {
		fmt.Fprintf(w, "\ncircuits: %s\n", r.CircuitsNote)
		return
	}
	fmt.Fprintf(w, "\ncircuits (%s):\n", r.CircuitsNote)
	for _, c := range r.Circuits {
		extra := ""
		if c.State != "closed" {
			extra = fmt.Sprintf(" for %s", (time.Duration(c.OpenSeconds * float64(time.Second))).Round(time.Second))
		}
		fmt.Fprintf(w, "  %-16s %s%s\n", c.Sink, c.State, extra)
	}
}

// defaultMetricsURL is the relay's /metrics on this host, from telemetry.listen.
func defaultMetricsURL(c *config.Config) string {
	if !c.Telemetry.ServerEnabled() {
		return ""
	}
	host, port, err := net.SplitHostPort(c.Telemetry.Listen)
	if err != nil {
		return ""
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/metrics"
}

// scrapeCircuits reads conveyor_circuit_state and conveyor_circuit_open_seconds from a
// relay's Prometheus endpoint. Only that relay's breakers are known this way.
func scrapeCircuits(ctx context.Context, url string) ([]statusCircuit, error) {
	if url == "" {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("bad --metrics-url: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("no relay metrics at %s (is a relay running on this host?)", url)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", url, resp.Status)
	}
	states := map[string]float64{}
	open := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var into map[string]float64
		switch {
		case strings.HasPrefix(line, "conveyor_circuit_state{"):
			into = states
		case strings.HasPrefix(line, "conveyor_circuit_open_seconds{"):
			into = open
		default:
			continue
		}
		labels, value, ok := strings.Cut(line[strings.Index(line, "{")+1:], "} ")
		if !ok {
			continue
		}
		sink := labelValue(labels, "sink")
		if v, err := strconv.ParseFloat(strings.Fields(value)[0], 64); err == nil && sink != "" {
			into[sink] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", url, err)
	}
	out := []statusCircuit{}
	for sink, v := range states {
		state := "closed"
		switch v {
		case 1:
			state = "open"
		case 2:
			state = "half-open"
		}
		out = append(out, statusCircuit{Sink: sink, State: state, OpenSeconds: open[sink]})
	}
	slices.SortFunc(out, func(a, b statusCircuit) int { return strings.Compare(a.Sink, b.Sink) })
	return out, nil
}

func labelValue(labels, name string) string {
	for _, part := range strings.Split(labels, ",") {
		k, v, ok := strings.Cut(part, "=")
		if ok && strings.TrimSpace(k) == name {
			s, err := strconv.Unquote(strings.TrimSpace(v))
			if err == nil {
				return s
			}
		}
	}
	return ""
}

// age formats the oldest pending age of a row, "-" when nothing is pending.
func age(pending int64, seconds float64) string {
	if pending == 0 {
		return "-"
	}
	return (time.Duration(seconds * float64(time.Second))).Round(time.Second).String()
}
