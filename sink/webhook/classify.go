package webhook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/conveyorhq/conveyor/sink"
)

const (
	// excerptBytes bounds the part of a failed response's body quoted in the error.
	excerptBytes = 512
	// drainBytes is how much more of a response is read so its connection can be
	// reused; larger bodies close the connection instead.
	drainBytes = 64 << 10
	// maxRetryAfter caps a receiver's Retry-After.
	maxRetryAfter = 24 * time.Hour
)

// transportError classifies a request that got no response: the receiver could not be
// reached (DNS, refused, TLS) or did not answer in time. Both are outages of the
// destination, not faults of the message.
func (s *Sink) transportError(ctx context.Context, id, where string, err error) error {
	err = s.redact(err)
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		return sink.Transient(fmt.Errorf("webhook: POST %s for event %s got no response within %s (timeout): %w", where, id, s.cfg.Timeout, err))
	}
	return sink.Transient(fmt.Errorf("webhook: POST %s for event %s failed: %w", where, id, err))
}

// responseError classifies the receiver's answer (see the package documentation).
func (s *Sink) responseError(id, where string, resp *http.Response) error {
	code := resp.StatusCode
	if code >= 200 && code <= 299 {
		drain(resp.Body)
		return nil
	}
	excerpt := readExcerpt(resp.Body)
	status := fmt.Sprintf("%d %s", code, http.StatusText(code))
	if excerpt != "" {
		status += ": " + strconv.Quote(excerpt)
	}
	switch {
	case code >= 300 && code <= 399:
		loc := resp.Header.Get("Location")
		hint := "redirects are not followed (follow_redirects: false)"
		if s.cfg.FollowRedirects {
			hint = "only 307 and 308 redirects are followed, at most max_redirects of them"
		}
		return fmt.Errorf("webhook: POST %s for event %s was redirected to %q; %s: update the route's URL: %s",
			where, id, redactURL(loc), hint, status)
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		return sink.Retry(fmt.Errorf("webhook: POST %s for event %s: receiver answered %s", where, id, status),
			retryAfter(resp.Header.Get("Retry-After"), s.now()))
	case code >= 400:
		return sink.Permanent(fmt.Errorf("webhook: POST %s for event %s was rejected: %s", where, id, status))
	}
	return fmt.Errorf("webhook: POST %s for event %s: unexpected response %s", where, id, status)
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP-date. Zero when
// absent or invalid.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

// readExcerpt reads the start of a body, made printable, then drains a little more.
func readExcerpt(body io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(body, excerptBytes))
	drain(body)
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' {
			return ' '
		}
		if !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(b) == excerptBytes {
		s += "…"
	}
	return s
}

func drain(body io.Reader) { _, _ = io.Copy(io.Discard, io.LimitReader(body, drainBytes)) }
