// Package webhook is the HTTP webhook sink, sink type "webhook". It POSTs each event to
// the URL its route renders, as a CloudEvents HTTP binary-mode request (the body is the
// event data; attributes are ce-* headers) signed the Standard Webhooks way: webhook-id
// is the event id (receivers drop duplicates by it), webhook-timestamp the time of the
// attempt, and webhook-signature one HMAC-SHA256 signature per configured secret.
//
// How responses count: 2xx is success; 408, 429 and 5xx are retried, after Retry-After
// when the receiver sends it; a 3xx is retried (redirects are not followed by default);
// any other 4xx is permanent. A receiver that cannot be reached, or does not answer
// within the timeout, is an outage.
package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/conveyorhq/conveyor/cloudevents"
	"github.com/conveyorhq/conveyor/sink"
)

// ErrClosed is returned, as a transient error, for a publish after Close.
var ErrClosed = errors.New("webhook: sink is closed")

// Sink POSTs events to webhook receivers. It implements sink.Sink and sink.Checker.
//
// Publish is safe for concurrent use; the requests of all calls share one pool of
// MaxConcurrency. Close stops new publishes, waits for the requests in flight, then
// closes idle connections.
type Sink struct {
	cfg     Config
	log     *slog.Logger
	client  *http.Client
	signer  *Signer
	base    *url.URL
	sem     chan struct{}
	secrets []string
	now     func() time.Time

	gate      sink.Gate
	closeOnce sync.Once
	closeErr  error
}

var (
	_ sink.Sink    = (*Sink)(nil)
	_ sink.Checker = (*Sink)(nil)
)

// New returns a webhook sink. It does not contact any receiver. A nil logger discards
// logs.
func New(cfg Config, log *slog.Logger) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, sink.RedactError(err, cfg.secrets())
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	signer, err := NewSigner(cfg.SigningSecrets)
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	tc, err := tlsConfig(cfg.TLS)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	tr.MaxIdleConnsPerHost = cfg.MaxConcurrency
	tr.MaxConnsPerHost = 0
	tr.ResponseHeaderTimeout = cfg.Timeout
	s := &Sink{
		cfg: cfg, log: log, signer: signer, sem: make(chan struct{}, cfg.MaxConcurrency),
		secrets: cfg.secrets(), now: time.Now,
	}
	s.client = &http.Client{Transport: tr, CheckRedirect: s.checkRedirect}
	if cfg.BaseURL != "" {
		s.base, _ = url.Parse(cfg.BaseURL) // validated
	}
	log.Info("webhook: ready", "config", cfg)
	return s, nil
}

// checkRedirect follows only 307 and 308, which keep the POST and its body, and only
// when FollowRedirects is set; otherwise the 3xx response itself is returned.
func (s *Sink) checkRedirect(req *http.Request, via []*http.Request) error {
	if !s.cfg.FollowRedirects {
		return http.ErrUseLastResponse
	}
	if code := req.Response.StatusCode; code != http.StatusTemporaryRedirect && code != http.StatusPermanentRedirect {
		return http.ErrUseLastResponse // 301/302/303 would turn the POST into a GET
	}
	if len(via) > s.cfg.MaxRedirects {
		return http.ErrUseLastResponse
	}
	return nil
}

func tlsConfig(t TLSConfig) (*tls.Config, error) {
	tc, err := sink.TLSOptions{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, ServerName: t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify}.Config()
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	return tc, nil
}

// Check connects to BaseURL's host (TCP, and TLS for https) without sending a request.
// Without a BaseURL there is nothing to check: every route renders its own URL.
func (s *Sink) Check(ctx context.Context) error {
	if s.base == nil {
		return nil
	}
	host := s.base.Host
	if s.base.Port() == "" {
		host = net.JoinHostPort(s.base.Hostname(), map[string]string{"http": "80", "https": "443"}[s.base.Scheme])
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return sink.Transient(fmt.Errorf("webhook: cannot reach %s: %w", redactURL(s.cfg.BaseURL), s.redact(err)))
	}
	defer conn.Close()
	if s.base.Scheme == "https" {
		tc := s.client.Transport.(*http.Transport).TLSClientConfig.Clone()
		if tc.ServerName == "" {
			tc.ServerName = s.base.Hostname()
		}
		tconn := tls.Client(conn, tc)
		if err := tconn.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("webhook: TLS to %s failed; check the tls settings: %w", redactURL(s.cfg.BaseURL), s.redact(err))
		}
	}
	return nil
}

// Publish POSTs every message concurrently (at most MaxConcurrency requests in flight
// across all calls) and returns one classified error per message.
func (s *Sink) Publish(ctx context.Context, msgs []*sink.Message) []error {
	if !s.gate.Enter() {
		return slices.Repeat([]error{sink.Transient(ErrClosed)}, len(msgs))
	}
	defer s.gate.Leave()
	return sink.FanOut(ctx, msgs, s.sem, "webhook: request not started", s.post)
}

// target returns the URL for a destination.
func (s *Sink) target(dest string) (*url.URL, error) {
	raw := dest
	if s.base != nil && !strings.Contains(dest, "://") {
		raw = strings.TrimRight(s.base.String(), "/") + "/" + strings.TrimLeft(dest, "/")
	}
	if err := checkURL(raw); err != nil {
		return nil, err
	}
	return url.Parse(raw)
}

// post sends one message and classifies the outcome.
func (s *Sink) post(ctx context.Context, m *sink.Message) error {
	if m == nil || m.Event == nil {
		return sink.Permanent(errors.New("webhook: message has no event"))
	}
	e := m.Event
	u, err := s.target(m.Destination)
	if err != nil {
		return sink.Permanent(fmt.Errorf("webhook: event %s: invalid destination for route %q: %w", e.ID, m.Route, s.redact(err)))
	}
	where := redactURL(u.String())
	if s.cfg.MaxBodyBytes > 0 && len(e.Data) > s.cfg.MaxBodyBytes {
		return sink.Permanent(fmt.Errorf("webhook: event %s (%d bytes of data) is larger than max_body_bytes (%d)", e.ID, len(e.Data), s.cfg.MaxBodyBytes))
	}

	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(e.Data))
	if err != nil {
		return sink.Permanent(fmt.Errorf("webhook: event %s: %w", e.ID, s.redact(err)))
	}
	for k, v := range s.cfg.Headers {
		req.Header.Set(k, v)
	}
	for k, v := range cloudevents.HTTPHeaders(e) {
		req.Header.Set(k, v)
	}
	id := e.ID.String()
	ts := s.now().Unix()
	req.Header.Set(HeaderID, id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	if sig := s.signer.Sign(id, ts, e.Data); sig != "" {
		req.Header.Set(HeaderSignature, sig)
	}
	req.Header.Set("User-Agent", s.cfg.UserAgent)

	resp, err := s.client.Do(req)
	if err != nil {
		if pw := urlSecret(u.String()); pw != "" {
			err = sink.RedactError(err, []string{pw})
		}
		return s.transportError(ctx, e.ID.String(), where, err)
	}
	defer resp.Body.Close()
	return s.responseError(e.ID.String(), where, resp)
}

func (s *Sink) redact(err error) error { return sink.RedactError(err, s.secrets) }

// Close stops new publishes, waits for the requests in flight to finish or ctx to end,
// then closes idle connections. Calling it again returns the first call's result.
func (s *Sink) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		if err := s.gate.Close(ctx); err != nil {
			s.closeErr = fmt.Errorf("webhook: closing with requests still in flight: %w", err)
		}
		s.client.CloseIdleConnections()
	})
	return s.closeErr
}
