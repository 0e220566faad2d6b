package redisstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/sink"
)

// errTooLarge marks an event refused by the sink before it was sent.
var errTooLarge = errors.New("event too large")

// Error prefixes of Redis replies that mean the server cannot take writes for now:
// loading its data set, a read-only replica, out of memory (maxmemory), a replica
// without its master, a script running too long, a cluster reconfiguring, or a failed
// background save refusing writes (stop-writes-on-bgsave-error).
var transientPrefixes = []string{
	"LOADING", "READONLY", "OOM", "MASTERDOWN", "BUSY", "TRYAGAIN", "CLUSTERDOWN",
	"NOREPLICAS", "MISCONF", "NOAUTH", "WRONGPASS",
}

// classify turns a failed XADD of m into a sink error (G5).
func (s *Sink) classify(m *sink.Message, err error) error {
	err = sink.RedactError(err, s.secrets)
	id, stream := m.Event.ID, m.Destination
	switch {
	case redis.HasErrorPrefix(err, "WRONGTYPE"):
		return sink.Permanent(fmt.Errorf("redisstream: event %s: key %q on %s is not a stream; fix the route's destination or delete the key: %w",
			id, stream, s.addr, err))
	case redis.HasErrorPrefix(err, "NOPERM"):
		return sink.Permanent(fmt.Errorf("redisstream: event %s: the user may not write to key %q; grant it (ACL ~%s +xadd%s) or fix the route's destination: %w",
			id, stream, stream, s.aclScript(), err))
	case isProtocolTooLarge(err):
		return sink.Permanent(fmt.Errorf("redisstream: event %s (%d bytes of data) is larger than %s accepts (proto-max-bulk-len); shrink the event or raise proto-max-bulk-len: %w",
			id, len(m.Event.Data), s.addr, err))
	case redis.HasErrorPrefix(err, "OOM"):
		return sink.Transient(fmt.Errorf("redisstream: %s is out of memory (maxmemory); trim streams (maxlen) or add memory: %w", s.addr, err))
	case isTransient(err):
		return sink.Transient(fmt.Errorf("redisstream: XADD of event %s to stream %q on %s failed: %w", id, stream, s.addr, err))
	}
	return fmt.Errorf("redisstream: XADD of event %s to stream %q failed: %w", id, stream, err)
}

func (s *Sink) aclScript() string {
	if s.cfg.DedupWindow > 0 {
		return " +eval +evalsha +get +set"
	}
	return ""
}

// isProtocolTooLarge reports the error Redis answers (before closing the connection)
// to a bulk string longer than proto-max-bulk-len.
func isProtocolTooLarge(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "Protocol error") && strings.Contains(msg, "bulk length")
}

// isTransient reports failures of the server or the connection, not of the message.
func isTransient(err error) bool {
	for _, p := range transientPrefixes {
		if redis.HasErrorPrefix(err, p) {
			return true
		}
	}
	for _, target := range []error{
		context.Canceled, context.DeadlineExceeded, redis.ErrClosed, redis.ErrPoolTimeout,
		io.EOF, io.ErrUnexpectedEOF, net.ErrClosed, syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EPIPE,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "connection reset") || strings.Contains(msg, "broken pipe") ||
		strings.Contains(msg, "use of closed network connection")
}

// isConnClosed reports a connection the server closed (or reset) under a command, as
// opposed to a timeout or a reply.
func isConnClosed(err error) bool {
	if err == nil || isProtocolTooLarge(err) {
		return err != nil
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return false
	}
	for _, target := range []error{io.EOF, io.ErrUnexpectedEOF, syscall.ECONNRESET, syscall.EPIPE} {
		if errors.Is(err, target) {
			return true
		}
	}
	msg := err.Error()
	return strings.Contains(msg, "connection reset") || strings.Contains(msg, "broken pipe")
}

// connectError explains a failed first contact and classifies it: a server that cannot
// be reached (or is loading) is an outage; bad credentials or TLS settings are not.
func (s *Sink) connectError(err error) error {
	err = sink.RedactError(err, s.secrets)
	var certErr *tls.CertificateVerificationError
	switch {
	case redis.HasErrorPrefix(err, "WRONGPASS"), redis.HasErrorPrefix(err, "NOAUTH"),
		strings.Contains(err.Error(), "invalid password"), strings.Contains(err.Error(), "invalid username-password"):
		return fmt.Errorf("redisstream: %s rejected the credentials; check the URL's user and password, or username, password and password_file: %w",
			s.addr, err)
	case redis.HasErrorPrefix(err, "NOPERM"):
		return fmt.Errorf("redisstream: %s: the user lacks a permission the sink needs (+ping +client|setname +xadd +type +config|get; +eval +evalsha +get +set with dedup_window): %w",
			s.addr, err)
	case errors.As(err, &certErr), strings.Contains(err.Error(), "tls:"), strings.Contains(err.Error(), "x509:"):
		return fmt.Errorf("redisstream: TLS to %s failed; check the tls settings and the URL scheme (rediss://): %w", s.addr, err)
	case strings.Contains(err.Error(), "DB index is out of range"):
		return fmt.Errorf("redisstream: %s: no such database; check db or the URL's /db: %w", s.addr, err)
	}
	return sink.Transient(fmt.Errorf("redisstream: cannot reach Redis at %s (is redis-server running and reachable?): %w", s.addr, err))
}
