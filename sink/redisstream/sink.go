// Package redisstream is the Redis Streams sink: it appends each event to the stream
// named by the route's destination with XADD, as one entry whose fields are the
// CloudEvents attributes, the extra headers (h:<name>) and the data (see Fields). All
// messages of a Publish call go to the server in one pipelined round trip.
//
// Redis has no message deduplication of its own before Redis 8; with DedupWindow set,
// the sink adds the entry through a Lua script that drops an event id it has already
// added to that stream within the window (G4).
package redisstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/sink"
)

// ErrClosed is returned, as a transient error, for a publish after Close.
var ErrClosed = errors.New("redisstream: sink is closed")

// Sink appends to Redis streams. It implements sink.Sink and sink.Checker.
//
// Publish is safe for concurrent use; calls share a pool of PoolSize connections. Close
// stops new publishes, waits for those in flight, then closes the pool.
type Sink struct {
	cfg      Config
	log      *slog.Logger
	rdb      *redis.Client
	addr     string // host:port/db, for messages
	secrets  []string
	maxBytes int

	gate      sink.Gate
	closeOnce sync.Once
	closeErr  error
}

var (
	_ sink.Sink    = (*Sink)(nil)
	_ sink.Checker = (*Sink)(nil)
)

// New connects to the server and checks the configured Streams. A server that cannot
// be reached gives an error classified sink.Transient; rejected credentials give a
// plain error that says what to change. A nil logger discards logs.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Sink, error) {
	secrets := cfg.secrets()
	if err := cfg.Validate(); err != nil {
		return nil, sink.RedactError(err, secrets)
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	quietOnce.Do(func() { redis.SetLogger(quietLogger{}) })
	opt, err := redis.ParseURL(cfg.URL)
	if err != nil {
		return nil, sink.RedactError(fmt.Errorf("redisstream: url: %w", err), secrets)
	}
	if cfg.Username != "" {
		opt.Username = cfg.Username
	}
	if cfg.Password != "" {
		opt.Password = cfg.Password
	}
	if cfg.DB != 0 {
		opt.DB = cfg.DB
	}
	opt.ClientName = cfg.ClientName
	opt.PoolSize = cfg.PoolSize
	opt.DialTimeout = cfg.DialTimeout
	opt.ReadTimeout, opt.WriteTimeout = cfg.CommandTimeout, cfg.CommandTimeout
	opt.ContextTimeoutEnabled = true
	// No retries inside the client: a retried XADD whose first try reached the server
	// adds the entry twice, and the relay retries with backoff and a circuit anyway.
	opt.MaxRetries = -1
	opt.DisableIdentity = true // CLIENT SETINFO is Redis 7.2+; skip the noise
	if cfg.TLS.enabled() {
		tc, err := tlsConfig(cfg.TLS, opt.TLSConfig)
		if err != nil {
			return nil, err
		}
		opt.TLSConfig = tc
	}
	s := &Sink{cfg: cfg, log: log, rdb: redis.NewClient(opt), addr: opt.Addr + "/" + strconv.Itoa(opt.DB), secrets: secrets}
	if err := s.Check(ctx); err != nil {
		_ = s.rdb.Close()
		return nil, err
	}
	s.maxBytes = s.bulkLimit(ctx)
	log.Info("redisstream: connected", "config", cfg, "max_message_bytes", s.maxBytes)
	return s, nil
}

func tlsConfig(t TLSConfig, base *tls.Config) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if base != nil {
		tc = base.Clone()
	}
	if t.ServerName != "" {
		tc.ServerName = t.ServerName
	}
	tc.InsecureSkipVerify = t.InsecureSkipVerify //nolint:gosec // opt-in, for tests
	files := sink.TLSOptions{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile}
	if err := files.LoadFiles(tc); err != nil {
		return nil, fmt.Errorf("redisstream: %w", err)
	}
	return tc, nil
}

// bulkLimit returns the largest field value to send: max_message_bytes, else the
// server's proto-max-bulk-len, else Redis's default.
func (s *Sink) bulkLimit(ctx context.Context) int {
	if s.cfg.MaxMessageBytes > 0 {
		return s.cfg.MaxMessageBytes
	}
	vals, err := s.rdb.ConfigGet(ctx, "proto-max-bulk-len").Result()
	if err == nil {
		if n, err := strconv.Atoi(vals["proto-max-bulk-len"]); err == nil && n > 0 {
			return n
		}
	}
	s.log.Debug("redisstream: cannot read proto-max-bulk-len; assuming Redis's default", "err", sink.RedactError(err, s.secrets))
	return DefaultMaxMessageBytes
}

// Check verifies that the server answers and that each configured stream is a stream
// or does not exist yet.
func (s *Sink) Check(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return s.connectError(err)
	}
	for _, stream := range s.cfg.Streams {
		typ, err := s.rdb.Type(ctx, stream).Result()
		if err != nil {
			return s.connectError(err)
		}
		if typ != "stream" && typ != "none" {
			return fmt.Errorf("redisstream: key %q on %s holds a %s, not a stream; remove it from streams or delete the key", stream, s.addr, typ)
		}
	}
	return nil
}

// Publish sends one XADD per message (or one deduplicating script call, with
// DedupWindow) in a single pipeline and reports each command's result. Redis runs a
// connection's commands in order, so messages of one call reach each stream in the
// order of msgs.
func (s *Sink) Publish(ctx context.Context, msgs []*sink.Message) []error {
	if !s.gate.Enter() {
		return slices.Repeat([]error{sink.Transient(ErrClosed)}, len(msgs))
	}
	defer s.gate.Leave()
	errs := make([]error, len(msgs))

	cmds := make([]redis.Cmder, len(msgs))
	fields := make([][]string, len(msgs))
	pipe := s.rdb.Pipeline()
	queued := 0
	for i, m := range msgs {
		if err := ctx.Err(); err != nil {
			errs[i] = sink.Transient(fmt.Errorf("redisstream: publish not started: %w", err))
			continue
		}
		f, err := s.entry(m)
		if err != nil {
			errs[i] = err
			continue
		}
		fields[i] = f
		cmds[i] = s.queue(ctx, pipe, m, f, false)
		queued++
	}
	if queued == 0 {
		return errs
	}
	_, _ = pipe.Exec(ctx) // errors are per command

	var reload []int // scripts the server does not know (restarted, SCRIPT FLUSH)
	for i, cmd := range cmds {
		if cmd == nil {
			continue
		}
		if err := cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			reload = append(reload, i)
			continue
		}
		errs[i] = s.result(msgs[i], cmd)
	}
	if len(reload) > 0 {
		pipe := s.rdb.Pipeline()
		for _, i := range reload {
			cmds[i] = s.queue(ctx, pipe, msgs[i], fields[i], true)
		}
		_, _ = pipe.Exec(ctx)
		for _, i := range reload {
			errs[i] = s.result(msgs[i], cmds[i])
		}
	}
	s.blameLargest(ctx, msgs, fields, cmds, errs)
	return errs
}

// minBulkLimit is the lowest proto-max-bulk-len Redis accepts.
const minBulkLimit = 1 << 20

// blameLargest handles a server that closed the connection while a pipeline holding a
// large event was sent. Redis answers a bulk longer than proto-max-bulk-len with a
// protocol error and closes the connection; the client may see only the closed
// connection (its write is reset). When the server still answers a PING, the large
// event is to blame: it is refused as permanent, and the pipeline's other messages
// become message-level failures (retried without opening the circuit), not an outage.
func (s *Sink) blameLargest(ctx context.Context, msgs []*sink.Message, fields [][]string, cmds []redis.Cmder, errs []error) {
	var suspects, cut []int
	for i, cmd := range cmds {
		if cmd == nil || !isConnClosed(cmd.Err()) {
			continue
		}
		if largestField(fields[i]) > minBulkLimit {
			suspects = append(suspects, i)
		} else {
			cut = append(cut, i)
		}
	}
	if len(suspects) == 0 {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	if s.rdb.Ping(pctx).Err() != nil {
		return // the server is down: an outage after all
	}
	for _, i := range suspects {
		errs[i] = sink.Permanent(fmt.Errorf("redisstream: %s closed the connection while receiving event %s (%d bytes of data); it is probably larger than proto-max-bulk-len: shrink the event, raise proto-max-bulk-len, or set max_message_bytes: %w",
			s.addr, msgs[i].Event.ID, len(msgs[i].Event.Data), sink.RedactError(cmds[i].Err(), s.secrets)))
	}
	for _, i := range cut {
		errs[i] = fmt.Errorf("redisstream: XADD of event %s was cut off when %s closed the connection over a too-large event in the same pipeline: %w",
			msgs[i].Event.ID, s.addr, sink.RedactError(cmds[i].Err(), s.secrets))
	}
}

func largestField(fields []string) int {
	n := 0
	for j := 1; j < len(fields); j += 2 {
		n = max(n, len(fields[j]))
	}
	return n
}

// entry validates m and returns its fields.
func (s *Sink) entry(m *sink.Message) ([]string, error) {
	if m == nil || m.Event == nil {
		return nil, sink.Permanent(errors.New("redisstream: message has no event"))
	}
	if m.Destination == "" {
		return nil, sink.Permanent(fmt.Errorf("redisstream: event %s: route %q rendered an empty stream name", m.Event.ID, m.Route))
	}
	f := Fields(m.Event)
	for j := 1; j < len(f); j += 2 {
		if n := len(f[j]); n > s.maxBytes {
			return nil, sink.Permanent(fmt.Errorf("redisstream: event %s: field %s is %d bytes, more than the server accepts (%d, proto-max-bulk-len or max_message_bytes); shrink the event or raise proto-max-bulk-len: %w",
				m.Event.ID, f[j-1], n, s.maxBytes, errTooLarge))
		}
	}
	return f, nil
}

// queue adds the command for one entry to pipe: XADD, or the deduplicating script
// (by its hash, or by its source when eval is set).
func (s *Sink) queue(ctx context.Context, pipe redis.Pipeliner, m *sink.Message, fields []string, eval bool) redis.Cmder {
	if s.cfg.DedupWindow > 0 {
		keys := []string{m.Destination, s.dedupKey(m.Destination, m.Event.ID.String())}
		if eval {
			return dedupScript.Eval(ctx, pipe, keys, s.dedupArgs(fields)...)
		}
		return dedupScript.EvalSha(ctx, pipe, keys, s.dedupArgs(fields)...)
	}
	return pipe.XAdd(ctx, &redis.XAddArgs{Stream: m.Destination, MaxLen: s.cfg.MaxLen,
		Approx: s.cfg.MaxLen > 0 && !s.cfg.MaxLenExact, Values: fields})
}

// result turns a command's outcome into the message's error.
func (s *Sink) result(m *sink.Message, cmd redis.Cmder) error {
	if err := cmd.Err(); err != nil {
		return s.classify(m, err)
	}
	if c, ok := cmd.(*redis.Cmd); ok { // the dedup script: {entry id, duplicate?}
		if res, err := c.Slice(); err == nil && len(res) == 2 && fmt.Sprint(res[1]) == "1" {
			s.log.Debug("redisstream: duplicate dropped", "event_id", m.Event.ID, "stream", m.Destination, "entry", res[0])
		}
	}
	return nil
}

// Close stops new publishes, waits for in-flight ones to finish or ctx to end, then
// closes the connections. Calling it again returns the first call's result.
func (s *Sink) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		if err := s.gate.Close(ctx); err != nil {
			s.closeErr = fmt.Errorf("redisstream: closing with publishes still in flight: %w", err)
		}
		if err := s.rdb.Close(); err != nil && s.closeErr == nil && !errors.Is(err, redis.ErrClosed) {
			s.closeErr = sink.RedactError(fmt.Errorf("redisstream: close: %w", err), s.secrets)
		}
	})
	return s.closeErr
}

// Client returns the underlying go-redis client, for tools that read what the sink
// wrote (`conveyor tail`) with the same connection settings.
func (s *Sink) Client() *redis.Client { return s.rdb }

// quietOnce routes go-redis's own log lines (pool dial failures, printed to stderr by
// default) to slog's default logger at debug level: the sink reports every failure
// through its classified errors, and stray stderr lines would break JSON logs. The
// go-redis logger is global to the process.
var quietOnce sync.Once

type quietLogger struct{}

func (quietLogger) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().Log(ctx, slog.LevelDebug, "redisstream: go-redis: "+fmt.Sprintf(format, v...))
}
