package webhook_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor/sink"
	"github.com/conveyorhq/conveyor/sink/sinktest"
	"github.com/conveyorhq/conveyor/sink/webhook"
)

func TestSignatureVerifiesIndependently(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, secretA, 0)
	s := newSink(t, webhook.Config{SigningSecrets: []string{secretA}})
	e := event(1)
	require.NoError(t, sinktest.Publish(t, s, rc.URL("/sig"), e)[0])
	got := rc.requests("/sig")[0]
	require.Equal(t, e.ID.String(), got.header.Get("webhook-id"))
	require.Len(t, strings.Fields(got.header.Get("webhook-signature")), 1)
	require.Equal(t, e.Data, got.body, "the body is the event data, byte for byte")

	// A receiver with another secret refuses it: the signature really depends on the key.
	other := newReceiver(t, secretB, 0)
	err := sinktest.Publish(t, s, other.URL("/sig"), event(2))[0]
	require.Equal(t, sink.KindPermanent, sink.KindOf(err), "%v", err)
	require.ErrorContains(t, err, "401")
	require.ErrorContains(t, err, "bad signature", "the response body excerpt is in the error")
}

func TestSecretRotation(t *testing.T) {
	t.Parallel()
	// Both secrets sign; a receiver still on the old one and one already on the new one
	// both verify.
	s := newSink(t, webhook.Config{SigningSecrets: []string{secretB, secretA}})
	for _, secret := range []string{secretA, secretB} {
		rc := newReceiver(t, secret, 0)
		require.NoError(t, sinktest.Publish(t, s, rc.URL("/rot"), event(1))[0])
		require.Len(t, strings.Fields(rc.requests("/rot")[0].header.Get("webhook-signature")), 2)
	}
}

func TestUnsignedWithoutSecrets(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, "", 0)
	s := newSink(t, webhook.Config{})
	require.NoError(t, sinktest.Publish(t, s, rc.URL("/plain"), event(1))[0])
	h := rc.requests("/plain")[0].header
	require.Empty(t, h.Get("webhook-signature"))
	require.NotEmpty(t, h.Get("webhook-id"))
	require.NotEmpty(t, h.Get("webhook-timestamp"))
}

func TestStatusCodeMapping(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code int
		kind sink.Kind // -1: success
	}{
		{200, -1}, {201, -1}, {202, -1}, {204, -1},
		{301, sink.KindMessage}, {302, sink.KindMessage}, {307, sink.KindMessage}, {308, sink.KindMessage},
		{400, sink.KindPermanent}, {401, sink.KindPermanent}, {403, sink.KindPermanent}, {404, sink.KindPermanent},
		{409, sink.KindPermanent}, {410, sink.KindPermanent}, {413, sink.KindPermanent}, {422, sink.KindPermanent},
		{408, sink.KindMessage}, {429, sink.KindMessage},
		{500, sink.KindMessage}, {502, sink.KindMessage}, {503, sink.KindMessage}, {504, sink.KindMessage},
	} {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.code >= 300 && tc.code < 400 {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(tc.code)
				_, _ = fmt.Fprintf(w, "answer %d\n", tc.code)
			}))
			defer srv.Close()
			s := newSink(t, webhook.Config{})
			err := sinktest.Publish(t, s, srv.URL+"/x", event(1))[0]
			if tc.kind == -1 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Equal(t, tc.kind, sink.KindOf(err), "%v", err)
			require.ErrorContains(t, err, fmt.Sprint(tc.code))
			require.ErrorContains(t, err, fmt.Sprintf("answer %d", tc.code))
		})
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	for _, tc := range []struct {
		code   int
		header string
		min    time.Duration
		max    time.Duration
	}{
		{429, "7", 7 * time.Second, 7 * time.Second},
		{503, "120", 2 * time.Minute, 2 * time.Minute},
		{503, date, 80 * time.Second, 91 * time.Second},
		{500, "", 0, 0},
		{429, "soon", 0, 0},
		{429, "99999999", 24 * time.Hour, 24 * time.Hour},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if tc.header != "" {
				w.Header().Set("Retry-After", tc.header)
			}
			w.WriteHeader(tc.code)
		}))
		s := newSink(t, webhook.Config{})
		err := sinktest.Publish(t, s, srv.URL, event(1))[0]
		srv.Close()
		require.Equal(t, sink.KindMessage, sink.KindOf(err))
		d := sink.RetryAfterOf(err)
		require.GreaterOrEqual(t, d, tc.min, "Retry-After %q", tc.header)
		require.LessOrEqual(t, d, tc.max, "Retry-After %q", tc.header)
	}
}

func TestRedirects(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, secretA, 0)
	mover := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code := http.StatusPermanentRedirect
		if r.URL.Path == "/found" {
			code = http.StatusFound
		}
		http.Redirect(w, r, rc.URL("/moved"), code)
	}))
	defer mover.Close()

	// Not followed by default: a message-level failure naming the new location.
	s := newSink(t, webhook.Config{SigningSecrets: []string{secretA}})
	err := sinktest.Publish(t, s, mover.URL+"/old", event(1))[0]
	require.Equal(t, sink.KindMessage, sink.KindOf(err), "%v", err)
	require.ErrorContains(t, err, "redirects are not followed")
	require.ErrorContains(t, err, rc.URL("/moved"))
	require.Empty(t, rc.requests("/moved"))

	// follow_redirects follows a 308 with the POST, its body and its signature...
	f := newSink(t, webhook.Config{SigningSecrets: []string{secretA}, FollowRedirects: true})
	e := event(2)
	require.NoError(t, sinktest.Publish(t, f, mover.URL+"/old", e)[0])
	require.Len(t, rc.requests("/moved"), 1)
	require.Equal(t, e.Data, rc.requests("/moved")[0].body)
	// ...but never a 302, which would turn the POST into a GET.
	err = sinktest.Publish(t, f, mover.URL+"/found", event(3))[0]
	require.Equal(t, sink.KindMessage, sink.KindOf(err), "%v", err)
	require.ErrorContains(t, err, "only 307 and 308")
}

func TestUnreachableAndTimeoutAreTransient(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	s := newSink(t, webhook.Config{Timeout: 300 * time.Millisecond})
	err = sinktest.Publish(t, s, "http://"+addr+"/x", event(1))[0]
	require.Equal(t, sink.KindTransient, sink.KindOf(err), "%v", err)
	require.ErrorContains(t, err, "connection refused")

	err = sinktest.Publish(t, s, "http://no-such-host.invalid/x", event(1))[0]
	require.Equal(t, sink.KindTransient, sink.KindOf(err), "%v", err)

	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	defer slow.Close()
	defer close(release)
	start := time.Now()
	err = sinktest.Publish(t, s, slow.URL, event(1))[0]
	require.Equal(t, sink.KindTransient, sink.KindOf(err), "%v", err)
	require.ErrorContains(t, err, "timeout")
	require.Less(t, time.Since(start), 5*time.Second)
}

func TestInvalidDestinationIsPermanent(t *testing.T) {
	t.Parallel()
	s := newSink(t, webhook.Config{})
	for _, dest := range []string{"", "/relative", "ftp://host/x", "http://"} {
		err := sinktest.Publish(t, s, dest, event(1))[0]
		require.Equal(t, sink.KindPermanent, sink.KindOf(err), "%q: %v", dest, err)
	}
}

func TestHeadersBaseURLAndLimits(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, secretA, 0)
	s := newSink(t, webhook.Config{
		BaseURL:        rc.URL("/api/"),
		SigningSecrets: []string{secretA},
		Headers:        map[string]string{"Authorization": "Bearer t0ps3cret", "X-Env": "test"},
		MaxBodyBytes:   1024,
	})
	e := event(1)
	e.Headers["correlation-id"] = "corr-9"
	require.NoError(t, sinktest.Publish(t, s, "/hooks/order.paid", e)[0])
	h := rc.requests("/api/hooks/order.paid")[0].header
	require.Equal(t, "Bearer t0ps3cret", h.Get("Authorization"))
	require.Equal(t, "test", h.Get("X-Env"))
	require.Equal(t, "corr-9", h.Get("Correlation-Id"))
	require.Equal(t, "order.paid", h.Get("Ce-Type"))
	require.Equal(t, "1.0", h.Get("Ce-Specversion"))
	require.Equal(t, e.Headers["traceparent"], h.Get("Traceparent"))
	require.Equal(t, webhook.DefaultUserAgent, h.Get("User-Agent"))

	big := event(2)
	big.Data = []byte(`"` + strings.Repeat("x", 2000) + `"`)
	err := sinktest.Publish(t, s, "/hooks/big", big)[0]
	require.Equal(t, sink.KindPermanent, sink.KindOf(err), "%v", err)
	require.ErrorContains(t, err, "max_body_bytes")
}

func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := webhook.Config{
		SigningSecrets: []string{secretA},
		Headers:        map[string]string{"X-Api-Key": "k3y-s3cret"},
		BaseURL:        "http://user:url-s3cret@127.0.0.1:1/",
	}
	s, err := webhook.New(cfg, log)
	require.NoError(t, err)
	defer s.Close(context.Background())
	errs := sinktest.Publish(t, s, "/x", event(1))
	log.Info("config", "webhook", cfg)
	text := logs.String() + errs[0].Error() + fmt.Sprintf("%+v", cfg.Redacted())
	for _, secret := range []string{secretA, strings.TrimPrefix(secretA, "whsec_"), "k3y-s3cret", "url-s3cret"} {
		require.NotContains(t, text, secret)
	}
	require.Contains(t, errs[0].Error(), "user:REDACTED@", "%v", errs[0])
}

func TestMutualTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca, caKey := newCA(t)
	serverCert := issue(t, ca, caKey, "receiver", false)
	clientCert := issue(t, ca, caKey, "conveyor", true)
	caFile := writePEM(t, dir, "ca.pem", "CERTIFICATE", ca.Raw)
	certFile := writePEM(t, dir, "client.pem", "CERTIFICATE", clientCert.Certificate[0])
	keyDER, err := x509.MarshalPKCS8PrivateKey(clientCert.PrivateKey)
	require.NoError(t, err)
	keyFile := writePEM(t, dir, "client.key", "PRIVATE KEY", keyDER)

	pool := x509.NewCertPool()
	pool.AddCert(ca)
	var peer atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer.Store(r.TLS.PeerCertificates[0].Subject.CommonName)
		w.WriteHeader(http.StatusOK)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	defer srv.Close()

	s := newSink(t, webhook.Config{TLS: webhook.TLSConfig{CAFile: caFile, CertFile: certFile, KeyFile: keyFile}})
	require.NoError(t, sinktest.Publish(t, s, srv.URL+"/mtls", event(1))[0])
	require.Equal(t, "conveyor", peer.Load())
	require.NoError(t, s.Check(context.Background()), "no base_url: nothing to check")
	withBase := newSink(t, webhook.Config{BaseURL: srv.URL, TLS: webhook.TLSConfig{CAFile: caFile, CertFile: certFile, KeyFile: keyFile}})
	require.NoError(t, withBase.Check(context.Background()))

	// Without the client certificate the receiver refuses the handshake; without the CA
	// the sink refuses the receiver. Both are outages of the destination, not faults of
	// the message.
	noCert := newSink(t, webhook.Config{TLS: webhook.TLSConfig{CAFile: caFile}})
	err = sinktest.Publish(t, noCert, srv.URL+"/mtls", event(2))[0]
	require.Equal(t, sink.KindTransient, sink.KindOf(err), "%v", err)
	noCA := newSink(t, webhook.Config{TLS: webhook.TLSConfig{CertFile: certFile, KeyFile: keyFile}})
	err = sinktest.Publish(t, noCA, srv.URL+"/mtls", event(3))[0]
	require.Equal(t, sink.KindTransient, sink.KindOf(err), "%v", err)
	require.ErrorContains(t, err, "certificate")
}

func TestClosedSinkRefusesTransient(t *testing.T) {
	t.Parallel()
	s := newSink(t, webhook.Config{})
	require.NoError(t, s.Close(context.Background()))
	require.NoError(t, s.Close(context.Background()))
	err := sinktest.Publish(t, s, "http://127.0.0.1:1/x", event(1))[0]
	require.ErrorIs(t, err, webhook.ErrClosed)
	require.Equal(t, sink.KindTransient, sink.KindOf(err))
}

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "conveyor test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return ca, key
}

func issue(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, client bool) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		tmpl.IPAddresses = nil
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
	return p
}
