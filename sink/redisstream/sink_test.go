package redisstream_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor"
	"github.com/conveyorhq/conveyor/internal/testdb"
	"github.com/conveyorhq/conveyor/internal/testlog"
	"github.com/conveyorhq/conveyor/internal/testproc"
	"github.com/conveyorhq/conveyor/sink"
	"github.com/conveyorhq/conveyor/sink/redisstream"
	"github.com/conveyorhq/conveyor/sink/sinktest"
)

// Tests against the shared server of `scripts/services.sh up redis`.

func TestEntryAsAConsumerReadsIt(t *testing.T) {
	t.Parallel()
	url := testdb.Require(t, EnvURL)
	s := newSink(t, redisstream.Config{URL: url})
	stream := uniqueStream("roundtrip")
	keyed, unkeyed := sinktest.OrderPaid("customer-7"), sinktest.OrderPaid("")
	unkeyed.Subject = ""
	sinktest.RequireNoErrors(t, sinktest.Publish(t, s, stream, keyed, unkeyed))

	got := readStream(t, url, stream, 2, 10*time.Second)
	require.Len(t, got, 2)
	for i, ev := range []*conveyor.Event{keyed, unkeyed} {
		e := got[i]
		require.Equal(t, ev.ID.String(), e.Attributes.ID, "entries keep the order of the call")
		require.Equal(t, "1.0", e.Attributes.SpecVersion)
		require.Equal(t, ev.Type, e.Attributes.Type)
		require.Equal(t, ev.Source, e.Attributes.Source)
		require.Equal(t, ev.Subject, e.Attributes.Subject)
		require.True(t, ev.CreatedAt.Equal(e.Attributes.Time))
		require.Equal(t, "application/json", e.Attributes.DataContentType)
		require.Equal(t, ev.Headers["traceparent"], e.Attributes.Extensions["traceparent"])
		require.Equal(t, map[string]string{"x-correlation-id": ev.Headers["x-correlation-id"]}, e.Headers)
		require.Equal(t, ev.Key, e.Key)
		require.JSONEq(t, string(ev.Data), string(e.Data))
	}

	// The raw entry, field by field, in order.
	res, err := client(t, url).Do(t.Context(), "XRANGE", stream, "-", "+", "COUNT", "1").Slice()
	require.NoError(t, err)
	fields := res[0].([]any)[1].([]any)
	var names []string
	for i := 0; i < len(fields); i += 2 {
		names = append(names, fields[i].(string))
	}
	require.Equal(t, []string{"specversion", "id", "source", "type", "subject", "time", "datacontenttype",
		"partitionkey", "traceparent", "h:x-correlation-id", "data"}, names)
}

func TestWrongPasswordIsAClearErrorWithoutThePassword(t *testing.T) {
	t.Parallel()
	url := testdb.Require(t, EnvURL)
	good := strings.TrimPrefix(url[strings.Index(url, "://")+3:strings.LastIndex(url, "@")], ":")
	wrong := "wrong-" + good
	bad := strings.Replace(url, good, wrong, 1)
	log, buf := testlog.New(t)
	_, err := redisstream.New(t.Context(), redisstream.Config{URL: bad}, log)
	require.Error(t, err)
	t.Logf("error: %v", err)
	require.Contains(t, err.Error(), "rejected the credentials")
	require.NotEqual(t, sink.KindTransient, sink.KindOf(err), "bad credentials are not an outage")
	for _, secret := range []string{wrong, good} {
		require.NotContains(t, err.Error(), secret)
		require.NotContains(t, buf.String(), secret)
	}

	// The password field overrides the URL's, and is redacted alike.
	_, err = redisstream.New(t.Context(), redisstream.Config{URL: url, Password: wrong}, log)
	require.ErrorContains(t, err, "rejected the credentials")
	require.NotContains(t, err.Error(), wrong)
}

func TestWrongTypeIsPermanent(t *testing.T) {
	t.Parallel()
	url := testdb.Require(t, EnvURL)
	key := uniqueStream("string")
	require.NoError(t, client(t, url).Set(t.Context(), key, "not a stream", time.Minute).Err())
	s := newSink(t, redisstream.Config{URL: url})
	other := uniqueStream("ok")
	errs := s.Publish(t.Context(), append(sinktest.Messages(key, sinktest.OrderPaid("a")), sinktest.Messages(other, sinktest.OrderPaid("b"))...))
	require.Equal(t, sink.KindPermanent, sink.KindOf(errs[0]), "%v", errs[0])
	require.Contains(t, errs[0].Error(), "is not a stream")
	require.NoError(t, errs[1], "the pipeline's other commands are unaffected")

	_, err := redisstream.New(t.Context(), redisstream.Config{URL: url, Streams: []string{key}}, nil)
	require.ErrorContains(t, err, "holds a string, not a stream")
}

func TestMaxLenTrimsTheStream(t *testing.T) {
	t.Parallel()
	url := testdb.Require(t, EnvURL)
	for _, exact := range []bool{false, true} {
		s := newSink(t, redisstream.Config{URL: url, MaxLen: 10, MaxLenExact: exact})
		stream := uniqueStream("maxlen")
		for range 30 {
			var evs []*conveyor.Event
			for range 10 {
				evs = append(evs, sinktest.OrderPaid(""))
			}
			sinktest.RequireNoErrors(t, sinktest.Publish(t, s, stream, evs...))
		}
		n, err := client(t, url).XLen(t.Context(), stream).Result()
		require.NoError(t, err)
		if exact {
			require.EqualValues(t, 10, n)
		} else {
			require.Less(t, n, int64(300), "approximate trimming removes whole nodes")
			require.GreaterOrEqual(t, n, int64(10))
		}
	}
}

func TestWithoutDedupWindowAResentEventIsAddedAgain(t *testing.T) {
	t.Parallel()
	url := testdb.Require(t, EnvURL)
	s := newSink(t, redisstream.Config{URL: url})
	stream := uniqueStream("nodedup")
	ev := sinktest.OrderPaid("")
	sinktest.RequireNoErrors(t, sinktest.Publish(t, s, stream, ev))
	sinktest.RequireNoErrors(t, sinktest.Publish(t, s, stream, ev))
	require.Len(t, readStream(t, url, stream, 2, 5*time.Second), 2)
}

func TestDedupSurvivesAScriptFlush(t *testing.T) {
	t.Parallel()
	url := testdb.Require(t, EnvURL)
	s := newSink(t, redisstream.Config{URL: url, DedupWindow: time.Minute, MaxLen: 100})
	stream := uniqueStream("dedup")
	ev := sinktest.OrderPaid("")
	sinktest.RequireNoErrors(t, sinktest.Publish(t, s, stream, ev))
	// The server forgets its scripts (as after a restart): the sink loads it again.
	require.NoError(t, client(t, url).ScriptFlush(t.Context()).Err())
	sinktest.RequireNoErrors(t, sinktest.Publish(t, s, stream, ev, sinktest.OrderPaid("")))
	got := readStream(t, url, stream, 3, 2*time.Second)
	require.Len(t, got, 2, "the duplicate is dropped")
	ttl, err := client(t, url).PTTL(t.Context(), "conveyor:dedup:{"+stream+"}:"+ev.ID.String()).Result()
	require.NoError(t, err)
	require.Greater(t, ttl, 50*time.Second)
}

func TestDBSelection(t *testing.T) {
	t.Parallel()
	url := testdb.Require(t, EnvURL)
	s := newSink(t, redisstream.Config{URL: url, DB: 3})
	stream := uniqueStream("db3")
	sinktest.RequireNoErrors(t, sinktest.Publish(t, s, stream, sinktest.OrderPaid("")))
	db3 := strings.TrimSuffix(url, "/0") + "/3"
	require.Len(t, readStream(t, db3, stream, 1, 5*time.Second), 1)
	n, err := client(t, url).Exists(t.Context(), stream).Result()
	require.NoError(t, err)
	require.Zero(t, n, "nothing in db 0")
}

// Tests against servers the tests run, configured to fail in a given way.

func TestServerRefusesTooLargeBulkPermanently(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	// The sink is told the server takes more than it does, so the server refuses.
	s := newSink(t, redisstream.Config{URL: srv.URL(), MaxMessageBytes: 4 * maxBulk})
	stream := uniqueStream("large")
	big := sinktest.OrderPaid("")
	big.Data = []byte(`{"blob":"` + strings.Repeat("x", maxBulk+10) + `"}`)
	errs := sinktest.Publish(t, s, stream, big, sinktest.OrderPaid(""))
	require.Equal(t, sink.KindPermanent, sink.KindOf(errs[0]), "%v", errs[0])
	require.Contains(t, errs[0].Error(), "proto-max-bulk-len")
	if errs[1] != nil { // cut off with the connection: retried, but not an outage
		require.Equal(t, sink.KindMessage, sink.KindOf(errs[1]), "%v", errs[1])
	}
	sinktest.RequireNoErrors(t, sinktest.Publish(t, s, stream, sinktest.OrderPaid(""))) // a fresh connection
}

func TestTooLargeIsRefusedBeforeSending(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	s := newSink(t, redisstream.Config{URL: srv.URL()}) // reads proto-max-bulk-len
	big := sinktest.OrderPaid("")
	big.Data = []byte(`{"blob":"` + strings.Repeat("x", maxBulk) + `"}`)
	errs := sinktest.Publish(t, s, uniqueStream("large"), big, sinktest.OrderPaid(""))
	require.Equal(t, sink.KindPermanent, sink.KindOf(errs[0]), "%v", errs[0])
	require.Contains(t, errs[0].Error(), fmt.Sprintf("more than the server accepts (%d", maxBulk))
	require.NoError(t, errs[1])
}

func TestOutOfMemoryIsTransient(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "--maxmemory", "1mb", "--maxmemory-policy", "noeviction")
	s := newSink(t, redisstream.Config{URL: srv.URL()})
	errs := sinktest.Publish(t, s, uniqueStream("oom"), sinktest.OrderPaid(""))
	require.Equal(t, sink.KindTransient, sink.KindOf(errs[0]), "%v", errs[0])
	require.Contains(t, errs[0].Error(), "out of memory")
}

func TestReadOnlyReplicaIsTransient(t *testing.T) {
	t.Parallel()
	// A replica of a master that is not there: it refuses writes.
	srv := newServer(t, "--replicaof", "127.0.0.1", fmt.Sprint(testproc.FreePort(t)), "--replica-read-only", "yes")
	s := newSink(t, redisstream.Config{URL: srv.URL()})
	errs := sinktest.Publish(t, s, uniqueStream("ro"), sinktest.OrderPaid(""))
	require.Equal(t, sink.KindTransient, sink.KindOf(errs[0]), "%v", errs[0])
	require.Contains(t, errs[0].Error(), "READONLY")
}

func TestACLDeniedKeyIsPermanent(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	admin := client(t, srv.URL())
	require.NoError(t, admin.Do(t.Context(), "ACL", "SETUSER", "relay", "on", ">relay-pw", "~allowed:*",
		"+ping", "+client|setname", "+xadd", "+type", "+config|get").Err())
	url := strings.Replace(srv.URL(), ":"+testPassword+"@", "relay:relay-pw@", 1)
	s := newSink(t, redisstream.Config{URL: url})
	errs := s.Publish(t.Context(), append(sinktest.Messages("allowed:x", sinktest.OrderPaid("")), sinktest.Messages("denied:x", sinktest.OrderPaid(""))...))
	require.NoError(t, errs[0])
	require.Equal(t, sink.KindPermanent, sink.KindOf(errs[1]), "%v", errs[1])
	require.Contains(t, errs[1].Error(), "may not write to key")
}

func TestUnreachableServerIsTransient(t *testing.T) {
	t.Parallel()
	_, err := redisstream.New(t.Context(), redisstream.Config{URL: fmt.Sprintf("redis://:pw-xyz@127.0.0.1:%d/0", testproc.FreePort(t)),
		DialTimeout: 500 * time.Millisecond}, nil)
	require.Equal(t, sink.KindTransient, sink.KindOf(err), "%v", err)
	require.Contains(t, err.Error(), "cannot reach Redis")
	require.NotContains(t, err.Error(), "pw-xyz")
}

func TestOutageDuringPublishIsTransientAndBounded(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	s := newSink(t, redisstream.Config{URL: srv.URL(), CommandTimeout: time.Second})
	stream := uniqueStream("outage")
	sinktest.RequireNoErrors(t, sinktest.Publish(t, s, stream, sinktest.OrderPaid("")))
	srv.Stop(t)
	start := time.Now()
	for _, err := range sinktest.Publish(t, s, stream, sinktest.OrderPaid(""), sinktest.OrderPaid("")) {
		require.Equal(t, sink.KindTransient, sink.KindOf(err), "%v", err)
	}
	require.Less(t, time.Since(start), 5*time.Second)
	srv.Start(t)
	sinktest.RequireNoErrors(t, sinktest.Publish(t, s, stream, sinktest.OrderPaid("")))
}

func TestPublishReturnsWhenTheContextEnds(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	s := newSink(t, redisstream.Config{URL: srv.URL(), CommandTimeout: time.Minute})
	// Block the server for 3s with a script busy-looping (the sink's pipeline waits).
	go func() {
		_ = client(t, srv.URL()).Eval(context.Background(),
			"local t = redis.call('TIME') while true do local n = redis.call('TIME') if n[1] - t[1] >= 3 then break end end return 1", nil).Err()
	}()
	time.Sleep(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	errs := s.Publish(ctx, sinktest.Messages(uniqueStream("slow"), sinktest.OrderPaid("")))
	require.Less(t, time.Since(start), 2500*time.Millisecond)
	require.Equal(t, sink.KindTransient, sink.KindOf(errs[0]), "%v", errs[0])
}

func TestCloseAndPublishAfterClose(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	s, err := redisstream.New(t.Context(), redisstream.Config{URL: srv.URL()}, nil)
	require.NoError(t, err)
	require.NoError(t, s.Close(t.Context()))
	require.NoError(t, s.Close(t.Context()))
	errs := s.Publish(t.Context(), sinktest.Messages("x", sinktest.OrderPaid("")))
	require.ErrorIs(t, errs[0], redisstream.ErrClosed)
	require.Equal(t, sink.KindTransient, sink.KindOf(errs[0]))
}

func TestBadMessagesArePermanent(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	s := newSink(t, redisstream.Config{URL: srv.URL()})
	errs := s.Publish(t.Context(), []*sink.Message{{Destination: "x"}, {Event: sinktest.OrderPaid(""), Destination: ""}})
	for _, err := range errs {
		require.Equal(t, sink.KindPermanent, sink.KindOf(err), "%v", err)
	}
}
