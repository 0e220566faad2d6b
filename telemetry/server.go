package telemetry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultListen is the telemetry server's default address: localhost only, since the
// endpoints have no authentication.
const DefaultListen = "127.0.0.1:9464"

// ServerConfig configures the telemetry HTTP server.
type ServerConfig struct {
	// Addr is host:port. Default DefaultListen. Port 0 picks a free port (see Server.Addr).
	Addr string
	// Gatherer backs /metrics. Required.
	Gatherer prometheus.Gatherer
	// Health backs /readyz; without it /readyz always answers 200.
	Health *Health
	// ShutdownTimeout bounds the graceful shutdown in Stop. Default 5s.
	ShutdownTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Server serves /metrics, /healthz and /readyz. Start and Stop may each be called more
// than once.
type Server struct {
	cfg ServerConfig
	log *slog.Logger

	mu   sync.Mutex
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// NewServer returns a server; it listens once started.
func NewServer(cfg ServerConfig) *Server {
	cfg.Addr = cmp.Or(cfg.Addr, DefaultListen)
	cfg.ShutdownTimeout = cmp.Or(cfg.ShutdownTimeout, 5*time.Second)
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &Server{cfg: cfg, log: logger}
}

// Handler returns the server's routes, for embedding in another server.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{
		ErrorLog: slogPromLogger{s.log}, ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc("GET /healthz", ServeHealthz)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Health == nil {
			writeJSON(w, http.StatusOK, &ReadyReport{Ready: true, Circuits: []CircuitReport{}})
			return
		}
		s.cfg.Health.ServeReadyz(w, r)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "conveyor relay: /metrics (Prometheus), /healthz (liveness), /readyz (readiness)")
	})
	return mux
}

// Start listens on Addr and serves in the background. It fails when the address is
// taken. A non-loopback address is allowed, with a warning: the endpoints have no
// authentication.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return nil
	}
	if s.cfg.Gatherer == nil {
		return errors.New("telemetry: ServerConfig.Gatherer is required")
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("telemetry: listen on %s for /metrics, /healthz and /readyz: %w (set telemetry.listen to a free address, or \"off\")",
			s.cfg.Addr, err)
	}
	if !isLoopback(s.cfg.Addr) {
		s.log.Warn("telemetry server listens beyond localhost; /metrics, /healthz and /readyz have no authentication, so restrict access with a network policy or firewall",
			"addr", ln.Addr().String())
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.done = make(chan struct{})
	srv, done := s.srv, s.done
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("telemetry server stopped", "err", err)
		}
	}()
	s.log.Info("telemetry server listening", "addr", ln.Addr().String(), "endpoints", "/metrics /healthz /readyz")
	return nil
}

// Addr is the address the server listens on (useful with port 0); empty before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Stop shuts the server down gracefully: it stops accepting, lets in-flight requests
// finish for up to ShutdownTimeout, then closes.
func (s *Server) Stop() {
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.mu.Unlock()
	if srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		_ = srv.Close()
	}
	<-done
}

// isLoopback reports whether addr binds only loopback interfaces.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// slogPromLogger adapts slog to promhttp's error log.
type slogPromLogger struct{ log *slog.Logger }

func (l slogPromLogger) Println(v ...any) { l.log.Warn("metrics: " + fmt.Sprint(v...)) }
