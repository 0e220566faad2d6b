package natsjs_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor"
	"github.com/conveyorhq/conveyor/cloudevents"
	"github.com/conveyorhq/conveyor/internal/testlog"
	"github.com/conveyorhq/conveyor/internal/testproc"
	"github.com/conveyorhq/conveyor/sink"
	"github.com/conveyorhq/conveyor/sink/natsjs"
	"github.com/conveyorhq/conveyor/sink/sinktest"
)

func TestPublishReadBack(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, srv testServer) {
		s := newSink(t, natsjs.Config{URL: srv.URL(), CreateStream: true})
		events := []*conveyor.Event{sinktest.OrderPaid(""), sinktest.OrderPaid(""), sinktest.OrderPaid("")}
		events[1].Subject = "" // optional attribute left out
		events[2].Headers = nil
		msgs := sinktest.Messages("events.order.paid", events...)
		msgs[2].Destination = "events.invoice.issued"

		before := time.Now()
		sinktest.RequireNoErrors(t, s.Publish(t.Context(), msgs))
		after := time.Now()

		got := readStream(t, srv.URL(), natsjs.DefaultStream, len(events))
		for i, m := range got {
			e := events[i]
			require.Equal(t, msgs[i].Destination, m.Subject())
			require.Equal(t, e.Data, m.Data())
			h := m.Headers()
			require.Equal(t, e.ID.String(), h.Get(jetstream.MsgIDHeader))
			require.Equal(t, "1.0", h.Get("ce-specversion"))
			require.Equal(t, e.ID.String(), h.Get("ce-id"))
			require.Equal(t, "/shop", h.Get("ce-source"))
			require.Equal(t, "order.paid", h.Get("ce-type"))
			require.Equal(t, cloudevents.FormatTime(e.CreatedAt), h.Get("ce-time"))
			require.Equal(t, "application/json", h.Get("ce-datacontenttype"))
			if e.Subject != "" {
				require.Equal(t, e.Subject, h.Get("ce-subject"))
			} else {
				require.NotContains(t, h, "ce-subject")
			}
			require.Equal(t, e.Headers["traceparent"], h.Get("ce-traceparent"))
			require.Equal(t, e.Headers["x-correlation-id"], h.Get("x-correlation-id"))

			a, err := cloudevents.ParseNATS(h)
			require.NoError(t, err)
			require.Equal(t, cloudevents.FromEvent(e), a)

			md, err := m.Metadata()
			require.NoError(t, err)
			require.Equal(t, natsjs.DefaultStream, md.Stream)
			require.Equal(t, uint64(i+1), md.Sequence.Stream)
			require.WithinRange(t, md.Timestamp, before.Add(-time.Second), after.Add(time.Second))
		}

		// Tail sees the same messages: Count stops it, and so does Timeout once idle.
		var tailed []natsjs.Received
		err := natsjs.Tail(t.Context(), natsjs.TailParams{Config: natsjs.Config{URL: srv.URL()}, Count: 2},
			func(r natsjs.Received) error { tailed = append(tailed, r); return nil })
		require.NoError(t, err)
		require.Len(t, tailed, 2)

		tailed = nil
		err = natsjs.Tail(t.Context(), natsjs.TailParams{Config: natsjs.Config{URL: srv.URL()}, Timeout: 500 * time.Millisecond},
			func(r natsjs.Received) error { tailed = append(tailed, r); return nil })
		require.NoError(t, err)
		require.Len(t, tailed, 3)
		for i, r := range tailed {
			require.NoError(t, r.AttributesErr)
			require.Equal(t, cloudevents.FromEvent(events[i]), r.Attributes)
			require.Equal(t, msgs[i].Destination, r.Subject)
			require.Equal(t, events[i].Data, r.Data)
			require.Equal(t, uint64(i+1), r.StreamSeq)
			require.Equal(t, events[i].ID.String(), r.Headers[jetstream.MsgIDHeader][0])
			require.WithinRange(t, r.Timestamp, before.Add(-time.Second), after.Add(time.Second))
		}

		// A subject filter, and fn's error ends the tail.
		tailed = nil
		err = natsjs.Tail(t.Context(), natsjs.TailParams{Config: natsjs.Config{URL: srv.URL()}, Subject: "events.invoice.>", Timeout: 300 * time.Millisecond},
			func(r natsjs.Received) error { tailed = append(tailed, r); return nil })
		require.NoError(t, err)
		require.Len(t, tailed, 1)
		require.Equal(t, events[2].ID.String(), tailed[0].Attributes.ID)

		stop := fmt.Errorf("stop")
		err = natsjs.Tail(t.Context(), natsjs.TailParams{Config: natsjs.Config{URL: srv.URL()}},
			func(natsjs.Received) error { return stop })
		require.ErrorIs(t, err, stop)
	})
}

func TestTailContextAndMissingStream(t *testing.T) {
	t.Parallel()
	srv := newEmbedded(t)
	err := natsjs.Tail(t.Context(), natsjs.TailParams{Config: natsjs.Config{URL: srv.URL()}},
		func(natsjs.Received) error { return nil })
	require.ErrorContains(t, err, `stream "CONVEYOR" does not exist`)

	newSink(t, natsjs.Config{URL: srv.URL(), CreateStream: true})
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	err = natsjs.Tail(ctx, natsjs.TailParams{Config: natsjs.Config{URL: srv.URL()}},
		func(natsjs.Received) error { return nil })
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestDeduplicateByEventID(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, srv testServer) {
		s := newSink(t, natsjs.Config{URL: srv.URL(), CreateStream: true})
		e := sinktest.OrderPaid("")
		sinktest.RequireNoErrors(t, s.Publish(t.Context(), sinktest.Messages("events.order.paid", e)))
		// A relay that lost its lease after the ack publishes the same event again.
		sinktest.RequireNoErrors(t, s.Publish(t.Context(), sinktest.Messages("events.order.paid", e)))
		sinktest.RequireNoErrors(t, s.Publish(t.Context(), sinktest.Messages("events.order.paid", e, e)))
		require.Equal(t, uint64(1), streamMsgs(t, srv.URL(), natsjs.DefaultStream))
	})
}

func TestCreateStream(t *testing.T) {
	t.Parallel()
	srv := newEmbedded(t)
	cfg := natsjs.Config{URL: srv.URL(), Stream: "ORDERS", Subjects: []string{"orders.>"}, CreateStream: true, Duplicates: 5 * time.Minute}
	newSink(t, cfg)
	str, err := jsClient(t, srv.URL()).Stream(t.Context(), "ORDERS")
	require.NoError(t, err)
	sc := str.CachedInfo().Config
	require.Equal(t, []string{"orders.>"}, sc.Subjects)
	require.Equal(t, 5*time.Minute, sc.Duplicates)
	require.Equal(t, 1, sc.Replicas)
	require.Equal(t, jetstream.FileStorage, sc.Storage)

	// Starting again with another subject adds it to the existing stream.
	cfg.Subjects = []string{"orders.>", "billing.>"}
	s := newSink(t, cfg)
	str, err = jsClient(t, srv.URL()).Stream(t.Context(), "ORDERS")
	require.NoError(t, err)
	require.Equal(t, []string{"orders.>", "billing.>"}, str.CachedInfo().Config.Subjects)
	sinktest.RequireNoErrors(t, s.Publish(t.Context(), sinktest.Messages("billing.invoice", sinktest.OrderPaid(""))))
	require.NoError(t, s.Check(t.Context()))
}

func TestMissingStream(t *testing.T) {
	t.Parallel()
	srv := newEmbedded(t)
	_, err := natsjs.New(t.Context(), natsjs.Config{URL: srv.URL()}, nil)
	require.Error(t, err)
	require.Contains(t, err.Error(), `JetStream stream "CONVEYOR" does not exist`)
	require.Contains(t, err.Error(), "create_stream: true")
	require.Equal(t, sink.KindMessage, sink.KindOf(err), "a missing stream is a config error, not an outage")
}

func TestCheck(t *testing.T) {
	t.Parallel()
	srv := newEmbedded(t)
	s := newSink(t, natsjs.Config{URL: srv.URL(), CreateStream: true})
	require.NoError(t, s.Check(t.Context()))
	require.NoError(t, jsClient(t, srv.URL()).DeleteStream(t.Context(), natsjs.DefaultStream))
	err := s.Check(t.Context())
	require.ErrorContains(t, err, `"CONVEYOR" does not exist`)
}

func TestSubjectNotCaptured(t *testing.T) {
	t.Parallel()
	srv := newEmbedded(t)
	s := newSink(t, natsjs.Config{URL: srv.URL(), CreateStream: true})
	msgs := sinktest.Messages("events.ok", sinktest.OrderPaid(""), sinktest.OrderPaid(""), sinktest.OrderPaid(""))
	msgs[1].Destination = "orders.paid"
	msgs[2].Destination = "orders.paid"
	errs := s.Publish(t.Context(), msgs)
	require.NoError(t, errs[0], "other messages of the call are unaffected")
	for _, err := range errs[1:] {
		require.Equal(t, sink.KindPermanent, sink.KindOf(err), "%v", err)
		require.ErrorContains(t, err, `no JetStream stream captures subject "orders.paid"`)
	}
}

func TestInvalidDestination(t *testing.T) {
	t.Parallel()
	srv := newEmbedded(t)
	s := newSink(t, natsjs.Config{URL: srv.URL(), CreateStream: true})
	for _, dest := range []string{"", "events.*", "events.>", "events..x", "events.with space"} {
		errs := s.Publish(t.Context(), sinktest.Messages(dest, sinktest.OrderPaid("")))
		require.Equal(t, sink.KindPermanent, sink.KindOf(errs[0]), "%q: %v", dest, errs[0])
	}
	errs := s.Publish(t.Context(), []*sink.Message{{Destination: "events.x"}})
	require.Equal(t, sink.KindPermanent, sink.KindOf(errs[0]))
}

func TestMessageTooLarge(t *testing.T) {
	t.Parallel()
	big := []byte(`{"blob":"` + strings.Repeat("x", 4096) + `"}`)

	t.Run("stream max_msg_size", func(t *testing.T) {
		t.Parallel()
		srv := newEmbedded(t)
		_, err := jsClient(t, srv.URL()).CreateStream(t.Context(), jetstream.StreamConfig{
			Name: "SMALL", Subjects: []string{"small.>"}, MaxMsgSize: 2048,
		})
		require.NoError(t, err)
		s := newSink(t, natsjs.Config{URL: srv.URL(), Stream: "SMALL"})
		large, small := sinktest.OrderPaid(""), sinktest.OrderPaid("")
		large.Data = big
		errs := s.Publish(t.Context(), sinktest.Messages("small.x", large, small))
		require.Equal(t, sink.KindPermanent, sink.KindOf(errs[0]), "%v", errs[0])
		require.ErrorContains(t, errs[0], "larger than the stream allows")
		var apiErr *jetstream.APIError
		require.ErrorAs(t, errs[0], &apiErr)
		require.Equal(t, jetstream.JSErrCodeStreamMessageExceedsMaximum, apiErr.ErrorCode)
		require.NoError(t, errs[1])
	})

	t.Run("server max_payload", func(t *testing.T) {
		t.Parallel()
		srv := newProcess(t, "max_payload: 2048\n")
		s := newSink(t, natsjs.Config{URL: srv.URL(), CreateStream: true})
		large, small := sinktest.OrderPaid(""), sinktest.OrderPaid("")
		large.Data = big
		errs := s.Publish(t.Context(), sinktest.Messages("events.x", large, small))
		require.Equal(t, sink.KindPermanent, sink.KindOf(errs[0]), "%v", errs[0])
		require.ErrorContains(t, errs[0], "max_payload of 2048 bytes")
		require.NoError(t, errs[1])
	})
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	port := testproc.FreePort(t)
	const password = "hunter2-unreachable"
	_, err := natsjs.New(t.Context(), natsjs.Config{
		URL:            fmt.Sprintf("nats://conveyor:%s@127.0.0.1:%d", password, port),
		ConnectTimeout: time.Second,
	}, nil)
	require.Error(t, err)
	require.Equal(t, sink.KindTransient, sink.KindOf(err), "%v", err)
	require.Contains(t, err.Error(), fmt.Sprintf("nats://conveyor:REDACTED@127.0.0.1:%d", port))
	require.Contains(t, err.Error(), "is nats-server running")
	require.NotContains(t, err.Error(), password)
}

func TestServerStopAndRestart(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, srv testServer) {
		s := newSink(t, natsjs.Config{URL: srv.URL(), CreateStream: true, AckTimeout: 2 * time.Second})
		sinktest.RequireNoErrors(t, s.Publish(t.Context(), sinktest.Messages("events.x", sinktest.OrderPaid(""))))

		srv.Stop(t)
		for range 3 {
			errs := s.Publish(t.Context(), sinktest.Messages("events.x", sinktest.OrderPaid(""), sinktest.OrderPaid("")))
			for _, err := range errs {
				require.Error(t, err)
				require.Equal(t, sink.KindTransient, sink.KindOf(err), "%v", err)
			}
		}

		srv.Restart(t)
		var last error
		require.Eventually(t, func() bool {
			last = s.Publish(t.Context(), sinktest.Messages("events.x", sinktest.OrderPaid("")))[0]
			return last == nil
		}, 30*time.Second, 250*time.Millisecond, "publishing resumes after the server is back")
		require.NoError(t, last)
		require.Equal(t, uint64(2), streamMsgs(t, srv.URL(), natsjs.DefaultStream), "nothing from the outage was stored")
	})
}

func TestCredentialsNeverLeak(t *testing.T) {
	t.Parallel()
	const right, wrong = "right-Pa55-4c1d", "wrong-Pa55-9f7e"
	srv := newProcess(t, fmt.Sprintf("authorization {\n  user: conveyor\n  password: %q\n}\n", right))
	hostport := strings.TrimPrefix(srv.URL(), "nats://")

	for name, cfg := range map[string]natsjs.Config{
		"password field":  {URL: srv.URL(), User: "conveyor", Password: wrong},
		"password in url": {URL: "nats://conveyor:" + wrong + "@" + hostport},
		"invalid url":     {URL: "nats://conveyor:" + wrong + " x@" + hostport},
		"token":           {URL: srv.URL(), Token: wrong},
	} {
		_, err := natsjs.New(t.Context(), cfg, nil)
		require.Error(t, err, name)
		require.NotContains(t, err.Error(), wrong, name)
		require.NotContains(t, fmt.Sprintf("%+v", cfg.Redacted()), wrong, name)
		if name != "invalid url" {
			require.Contains(t, err.Error(), "rejected the credentials", name)
		}
	}

	log, buf := testlog.New(t)
	cfg := natsjs.Config{URL: "nats://conveyor:" + right + "@" + hostport, CreateStream: true}
	s, err := natsjs.New(t.Context(), cfg, log)
	require.NoError(t, err)
	sinktest.RequireNoErrors(t, s.Publish(t.Context(), sinktest.Messages("events.x", sinktest.OrderPaid(""))))
	srv.Stop(t) // disconnect logs must not leak either
	errs := s.Publish(t.Context(), sinktest.Messages("events.x", sinktest.OrderPaid("")))
	require.Error(t, errs[0])
	require.NotContains(t, errs[0].Error(), right)
	require.NoError(t, s.Close(t.Context()))
	require.NotEmpty(t, buf.String())
	require.NotContains(t, buf.String(), right)
}

func TestBoundedInFlight(t *testing.T) {
	t.Parallel()
	srv := newEmbedded(t)
	s := newSink(t, natsjs.Config{URL: srv.URL(), CreateStream: true, MaxInFlight: 64})

	batch := func(n int) []*sink.Message {
		events := make([]*conveyor.Event, n)
		for i := range events {
			events[i] = sinktest.OrderPaid("")
		}
		return sinktest.Messages("events.bulk", events...)
	}
	sinktest.RequireNoErrors(t, s.Publish(t.Context(), batch(10_000)))

	// Concurrent calls share the one window.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { sinktest.RequireNoErrors(t, s.Publish(t.Context(), batch(2_500))) })
	}
	wg.Wait()
	require.Equal(t, uint64(20_000), streamMsgs(t, srv.URL(), natsjs.DefaultStream))
}

func TestClose(t *testing.T) {
	t.Parallel()
	srv := newEmbedded(t)
	s, err := natsjs.New(t.Context(), natsjs.Config{URL: srv.URL(), CreateStream: true}, nil)
	require.NoError(t, err)
	sinktest.RequireNoErrors(t, s.Publish(t.Context(), sinktest.Messages("events.x", sinktest.OrderPaid(""))))
	require.NoError(t, s.Close(t.Context()))
	require.NoError(t, s.Close(t.Context()), "Close is idempotent")
	errs := s.Publish(t.Context(), sinktest.Messages("events.x", sinktest.OrderPaid("")))
	require.ErrorIs(t, errs[0], natsjs.ErrClosed)
	require.Equal(t, sink.KindTransient, sink.KindOf(errs[0]))
}

func TestPublishContextCanceled(t *testing.T) {
	t.Parallel()
	srv := newEmbedded(t)
	s := newSink(t, natsjs.Config{URL: srv.URL(), CreateStream: true})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	errs := s.Publish(ctx, sinktest.Messages("events.x", sinktest.OrderPaid("")))
	require.ErrorIs(t, errs[0], context.Canceled)
	require.Equal(t, sink.KindTransient, sink.KindOf(errs[0]))
}
