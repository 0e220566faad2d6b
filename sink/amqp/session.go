package amqp

import (
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/conveyorhq/conveyor/sink"
)

// session is one connection with one channel in confirm mode. It lives until the broker
// or the network closes either; the sink then opens a new one. Every publish in flight
// when it closes is answered from the close reason.
type session struct {
	conn *amqp091.Connection
	ch   *amqp091.Channel

	// mu serialises publishes so delivery tags are registered before their confirm can
	// be handled, and guards the fields below.
	mu       sync.Mutex
	pending  map[uint64]*inflight // by delivery tag
	closed   bool
	closeErr *amqp091.Error // the broker's reason, nil for a network failure or our Close
	blocked  string         // non-empty while the broker blocks publishers (resource alarm)

	done chan struct{} // closed when the listener has answered everything and exited
}

// inflight is one published message waiting for its confirm.
type inflight struct {
	id       string
	bodySize int
	target   target
	returned *amqp091.Return
	result   chan outcome // buffered 1
}

// outcome is how the broker answered a message.
type outcome struct {
	acked    bool
	returned *amqp091.Return
	// closed is set when the channel or connection closed before the confirm; reason is
	// the broker's close reason (nil for a network failure).
	closed bool
	reason *amqp091.Error
}

// dial opens a connection and a confirm-mode channel and starts the listener.
func dial(c Config, tc *tls.Config) (*session, error) {
	props := amqp091.NewConnectionProperties()
	props.SetClientConnectionName(c.Name)
	props["product"] = "conveyor"
	cfg := amqp091.Config{
		Heartbeat:       c.Heartbeat,
		Locale:          "en_US",
		Properties:      props,
		TLSClientConfig: tc,
		Dial:            amqp091.DefaultDial(c.ConnectTimeout),
	}
	if c.User != "" || c.Password != "" {
		uri, err := amqp091.ParseURI(c.URL)
		if err != nil {
			return nil, err
		}
		user := c.User
		if user == "" {
			user = uri.Username
		}
		pw := c.Password
		if pw == "" {
			pw = uri.Password
		}
		cfg.SASL = []amqp091.Authentication{&amqp091.PlainAuth{Username: user, Password: pw}}
	}
	conn, err := amqp091.DialConfig(c.URL, cfg)
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		_ = conn.Close()
		return nil, err
	}
	s := &session{conn: conn, ch: ch, pending: map[uint64]*inflight{}, done: make(chan struct{})}
	// Unbuffered on purpose: the library delivers a message's basic.return before its
	// basic.ack on the same goroutine, and one listener reading both channels therefore
	// sees the return first. With buffers the two could be read in either order.
	returns := ch.NotifyReturn(make(chan amqp091.Return))
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation))
	chClose := ch.NotifyClose(make(chan *amqp091.Error, 1))
	connClose := conn.NotifyClose(make(chan *amqp091.Error, 1))
	blocked := conn.NotifyBlocked(make(chan amqp091.Blocking, 4))
	go s.listen(returns, confirms, chClose, connClose, blocked)
	return s, nil
}

// listen answers each in-flight message from its return and confirm, and every one
// still waiting when the channel or connection closes. It runs until the library has
// closed the return and confirm channels, so it never leaves the library blocked.
func (s *session) listen(returns <-chan amqp091.Return, confirms <-chan amqp091.Confirmation,
	chClose, connClose <-chan *amqp091.Error, blocked <-chan amqp091.Blocking) {
	defer close(s.done)
	for returns != nil || confirms != nil {
		select {
		case r, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			s.onReturn(r)
		case c, ok := <-confirms:
			if !ok {
				confirms = nil
				s.shutdown(closeReason(chClose, connClose))
				continue
			}
			s.onConfirm(c)
		case e, ok := <-chClose:
			if !ok {
				chClose = nil
				continue
			}
			s.shutdown(e)
		case e, ok := <-connClose:
			if !ok {
				connClose = nil
				continue
			}
			s.shutdown(e)
		case b, ok := <-blocked:
			if !ok {
				blocked = nil
				continue
			}
			s.mu.Lock()
			s.blocked = ""
			if b.Active {
				s.blocked = b.Reason
			}
			s.mu.Unlock()
		}
	}
	s.shutdown(closeReason(chClose, connClose))
}

// closeReason waits briefly for the broker's reason after the library closed the
// confirm channel: it sends the reason just before, on another channel.
func closeReason(chClose, connClose <-chan *amqp091.Error) *amqp091.Error {
	timer := time.NewTimer(200 * time.Millisecond)
	defer timer.Stop()
	for chClose != nil || connClose != nil {
		select {
		case e, ok := <-chClose:
			if ok && e != nil {
				return e
			}
			chClose = nil
		case e, ok := <-connClose:
			if ok && e != nil {
				return e
			}
			connClose = nil
		case <-timer.C:
			return nil
		}
	}
	return nil
}

func (s *session) onReturn(r amqp091.Return) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Returns carry no delivery tag; the message id (the event id) names the message.
	// The oldest unanswered publish of that id is the one returned.
	var oldest *inflight
	var oldestTag uint64
	for tag, p := range s.pending {
		if p.id == r.MessageId && p.returned == nil && (oldest == nil || tag < oldestTag) {
			oldest, oldestTag = p, tag
		}
	}
	if oldest != nil {
		ret := r
		oldest.returned = &ret
	}
}

func (s *session) onConfirm(c amqp091.Confirmation) {
	s.mu.Lock()
	p := s.pending[c.DeliveryTag]
	delete(s.pending, c.DeliveryTag)
	s.mu.Unlock()
	if p != nil {
		p.result <- outcome{acked: c.Ack, returned: p.returned}
	}
}

// shutdown marks the session closed and answers every message still waiting.
func (s *session) shutdown(reason *amqp091.Error) {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		s.closeErr = reason
	} else if s.closeErr == nil {
		s.closeErr = reason
	}
	reason = s.closeErr
	pending := s.pending
	s.pending = map[uint64]*inflight{}
	s.mu.Unlock()
	for _, p := range pending {
		p.result <- outcome{closed: true, reason: reason, returned: p.returned}
	}
}

func (s *session) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed || s.conn.IsClosed() || s.ch.IsClosed()
}

// publish sends one message and registers it for its confirm.
func (s *session) publish(t target, pub amqp091.Publishing) (*inflight, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errSessionClosed
	}
	if s.blocked != "" {
		return nil, sink.Transient(fmt.Errorf("amqp: the broker is blocking publishers (%s); it is low on memory or disk", s.blocked))
	}
	// Registered under the lock the confirm handler takes, so the confirm cannot be
	// handled before the message is known. A publish to a closed channel fails here.
	dc, err := s.ch.PublishWithDeferredConfirm(t.exchange, t.routingKey, true, false, pub)
	if err != nil {
		return nil, err
	}
	if dc == nil {
		return nil, errors.New("amqp: channel is not in confirm mode")
	}
	p := &inflight{id: pub.MessageId, bodySize: len(pub.Body), target: t, result: make(chan outcome, 1)}
	s.pending[dc.DeliveryTag] = p
	return p, nil
}

// forget drops a message that stopped waiting (context done, confirm timeout), so a late
// confirm is ignored.
func (s *session) forget(p *inflight) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for tag, q := range s.pending {
		if q == p {
			delete(s.pending, tag)
		}
	}
}

// close closes the connection and waits for the listener, at most until done closes.
func (s *session) close(done <-chan struct{}) {
	_ = s.conn.Close()
	select {
	case <-s.done:
	case <-done:
	}
}

var errSessionClosed = errors.New("amqp: channel closed")

func tlsConfig(t TLSConfig) (*tls.Config, error) {
	tc, err := sink.TLSOptions{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, ServerName: t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify}.Config()
	if err != nil {
		return nil, fmt.Errorf("amqp: %w", err)
	}
	return tc, nil
}
