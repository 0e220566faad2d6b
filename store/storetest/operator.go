package storetest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor"
	"github.com/conveyorhq/conveyor/outbox"
	"github.com/conveyorhq/conveyor/store"
)

const actor = "alice@ops"

func (b *bundle) op() store.Operator {
	b.t.Helper()
	op, ok := b.s.(store.Operator)
	require.True(b.t, ok, "the driver must implement store.Operator")
	return op
}

// kill claims the given events and settles them dead with errMsg. block makes them hold
// their key (on_dead: block).
func (b *bundle) kill(errMsg string, block bool, want ...uuid.UUID) {
	b.t.Helper()
	wanted := map[uuid.UUID]bool{}
	for _, id := range want {
		wanted[id] = true
	}
	for len(wanted) > 0 {
		got := b.claim("killer", 1000, 1, time.Minute)
		require.NotEmpty(b.t, got, "events to kill must be claimable")
		for _, c := range got {
			o := outcome(c, store.OutcomeRelease)
			if wanted[c.ID] {
				o = outcome(c, store.OutcomeDead)
				o.Error, o.BlockKey = errMsg, block
				delete(wanted, c.ID)
			}
			require.Empty(b.t, b.settle("killer", o).LeaseLost)
		}
	}
}

// publishAll claims and publishes every claimable event.
func (b *bundle) publishAll() {
	b.t.Helper()
	for {
		got := b.claim("publisher", 1000, 100, time.Minute)
		if len(got) == 0 {
			return
		}
		outs := make([]store.Outcome, len(got))
		for i, c := range got {
			outs[i] = outcome(c, store.OutcomePublished)
		}
		require.Empty(b.t, b.settle("publisher", outs...).LeaseLost)
	}
}

// ago is a SQL expression for the database clock minus d.
func (b *bundle) ago(d time.Duration) string {
	switch b.h.Dialect {
	case outbox.Postgres:
		return fmt.Sprintf("now() - interval '%d seconds'", int(d.Seconds()))
	case outbox.MySQL:
		return fmt.Sprintf("UTC_TIMESTAMP(6) - INTERVAL %d SECOND", int(d.Seconds()))
	}
	return fmt.Sprintf("strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', '-%d seconds')", int(d.Seconds()))
}

func (b *bundle) exec(query string, args ...any) {
	b.t.Helper()
	_, err := b.db.Exec(b.q(query), args...)
	require.NoError(b.t, err)
}

type auditRow struct {
	Actor, Action, Detail string
	Event                 *string
}

func (b *bundle) audit() []auditRow {
	b.t.Helper()
	rows, err := b.db.Query(`SELECT actor, action, event, detail FROM conveyor_audit ORDER BY id`)
	require.NoError(b.t, err)
	defer rows.Close()
	var out []auditRow
	for rows.Next() {
		var a auditRow
		require.NoError(b.t, rows.Scan(&a.Actor, &a.Action, &a.Event, &a.Detail))
		out = append(out, a)
	}
	require.NoError(b.t, rows.Err())
	return out
}

func (b *bundle) count(where string) int {
	b.t.Helper()
	var n int
	require.NoError(b.t, b.db.QueryRow(`SELECT count(*) FROM conveyor_event WHERE `+where).Scan(&n))
	return n
}

func rowIDs(rows []*store.EventRow) []uuid.UUID {
	out := make([]uuid.UUID, len(rows))
	for i, r := range rows {
		out[i] = r.ID
	}
	return out
}

// sameID compares an audit row's event column with an id on either dialect.
func sameID(col *string, id uuid.UUID) bool {
	return col != nil && strings.ReplaceAll(*col, "-", "") == strings.ReplaceAll(id.String(), "-", "")
}

func (b *bundle) list(p store.ListEventsParams) []uuid.UUID {
	b.t.Helper()
	rows, err := b.op().ListEvents(context.Background(), &p)
	require.NoError(b.t, err)
	return rowIDs(rows)
}

// drain runs a change until it reports no more work and returns every changed id.
func drain(t *testing.T, f func(context.Context, *store.ChangeParams) (*store.ChangeResult, error), p store.ChangeParams) []uuid.UUID {
	t.Helper()
	var all []uuid.UUID
	for {
		res, err := f(context.Background(), &p)
		require.NoError(t, err)
		all = append(all, res.IDs...)
		if !res.More {
			return all
		}
		p.AfterID = res.LastID
	}
}

func exerciseOperator(t *testing.T, h Harness) {
	t.Run("OperatorEmpty", func(t *testing.T) {
		t.Parallel()
		b := h.setup(t)
		op, ctx := b.op(), context.Background()
		rows, err := op.ListEvents(ctx, &store.ListEventsParams{Statuses: []conveyor.Status{conveyor.StatusDead}})
		require.NoError(t, err)
		require.Empty(t, rows)
		cnt, err := op.CountEvents(ctx, &store.ListEventsParams{})
		require.NoError(t, err)
		require.Equal(t, &store.CountResult{}, cnt)
		for _, f := range []func(context.Context, *store.ChangeParams) (*store.ChangeResult, error){op.RetryDead, op.DiscardDead, op.Replay} {
			res, err := f(ctx, &store.ChangeParams{Actor: actor})
			require.NoError(t, err)
			require.Empty(t, res.IDs)
			require.False(t, res.More)
		}
		pr, err := op.Purge(ctx, &store.PurgeParams{PublishedOlderThan: time.Nanosecond, DeadOlderThan: time.Nanosecond, Actor: actor})
		require.NoError(t, err)
		require.Zero(t, pr.Deleted())
		require.False(t, pr.More)
		_, err = op.GetEvent(ctx, &store.GetEventParams{ID: uuid.Must(uuid.NewV7())})
		require.ErrorIs(t, err, store.ErrNotFound)
		ov, err := op.Overview(ctx)
		require.NoError(t, err)
		require.Empty(t, ov.ByType)
		require.Empty(t, ov.Leases)
		require.Empty(t, b.audit(), "no change, no audit row")
	})

	t.Run("OperatorActorRequired", func(t *testing.T) {
		t.Parallel()
		b := h.setup(t)
		_, err := b.op().RetryDead(context.Background(), &store.ChangeParams{})
		require.ErrorContains(t, err, "actor is required")
		_, err = b.op().Purge(context.Background(), &store.PurgeParams{PublishedOlderThan: time.Hour})
		require.ErrorContains(t, err, "actor is required")
	})

	t.Run("ListFilters", func(t *testing.T) {
		t.Parallel()
		b := h.setup(t)
		ids := b.insert(
			&outbox.Event{Type: "order.placed", Key: "o-1"},
			&outbox.Event{Type: "order.paid", Key: "o-1"},
			&outbox.Event{Type: "invoice.issued", Key: "i-1"},
			&outbox.Event{Type: "Order.placed"},
			&outbox.Event{Type: "order_x"},
		)
		// ids[0] and ids[2] dead with different errors; the rest published.
		b.kill("Broker said: Message TOO LARGE", false, ids[0])
		b.kill("connection refused", false, ids[2])
		b.publishAll()
		b.exec(`UPDATE conveyor_event SET created_at = `+b.ago(3*time.Hour)+` WHERE id = ?`, b.idArg(ids[0]))
		dead := []conveyor.Status{conveyor.StatusDead}

		require.Equal(t, []uuid.UUID{ids[0], ids[2]}, b.list(store.ListEventsParams{Statuses: dead}))
		require.Equal(t, []uuid.UUID{ids[0], ids[1]}, b.list(store.ListEventsParams{Filter: store.Filter{Type: "order.*"}}))
		require.Equal(t, []uuid.UUID{ids[1]}, b.list(store.ListEventsParams{Filter: store.Filter{Type: "order.pa?d"}}))
		require.Equal(t, []uuid.UUID{ids[3]}, b.list(store.ListEventsParams{Filter: store.Filter{Type: "Order.placed"}}), "types are case-sensitive")
		require.Equal(t, []uuid.UUID{ids[4]}, b.list(store.ListEventsParams{Filter: store.Filter{Type: "order_*"}}), "_ is literal")
		require.Equal(t, []uuid.UUID{ids[0], ids[1]}, b.list(store.ListEventsParams{Filter: store.Filter{Key: "o-1"}}))
		require.Equal(t, []uuid.UUID{ids[0]}, b.list(store.ListEventsParams{Statuses: dead, Filter: store.Filter{Error: "too large"}}), "error match ignores case")
		require.Equal(t, []uuid.UUID{ids[2], ids[4]}, b.list(store.ListEventsParams{Filter: store.Filter{IDs: []uuid.UUID{ids[4], ids[2]}}}))
		require.Equal(t, []uuid.UUID{ids[0]}, b.list(store.ListEventsParams{Filter: store.Filter{Until: time.Now().Add(-time.Hour)}}))
		require.Equal(t, ids[1:], b.list(store.ListEventsParams{Filter: store.Filter{Since: time.Now().Add(-time.Hour)}}))
		require.Equal(t, []uuid.UUID{ids[0], ids[1]}, b.list(store.ListEventsParams{Limit: 2}))
		require.Equal(t, []uuid.UUID{ids[2], ids[3]}, b.list(store.ListEventsParams{Limit: 2, AfterID: ids[1]}))

		cnt, err := b.op().CountEvents(context.Background(), &store.ListEventsParams{Statuses: dead})
		require.NoError(t, err)
		require.Equal(t, &store.CountResult{Count: 2, FirstID: ids[0], LastID: ids[2]}, cnt)

		rows, err := b.op().ListEvents(context.Background(), &store.ListEventsParams{Statuses: dead, Limit: 1})
		require.NoError(t, err)
		require.Equal(t, "order.placed", rows[0].Type)
		require.Equal(t, conveyor.StatusDead, rows[0].Status)
		require.Equal(t, "Broker said: Message TOO LARGE", rows[0].LastError)
		require.JSONEq(t, `{"n":1}`, rows[0].RawData)
	})

	t.Run("GetEventFullRow", func(t *testing.T) {
		t.Parallel()
		b := h.setup(t)
		id := b.insert(&outbox.Event{Type: "order.placed", Key: "o-1", Subject: "s", IdempotencyKey: "idem-1",
			Headers: map[string]string{"correlation-id": "c-1"}, Data: map[string]any{"total": 3}})[0]
		got := b.claim("relay-1", 10, 1, time.Minute)
		require.Len(t, got, 1)
		d, err := b.op().GetEvent(context.Background(), &store.GetEventParams{ID: id})
		require.NoError(t, err)
		ev := d.Event
		require.Equal(t, id, ev.ID)
		require.Equal(t, "o-1", ev.Key)
		require.Equal(t, "s", ev.Subject)
		require.Equal(t, "idem-1", ev.IdempotencyKey)
		require.Equal(t, "c-1", ev.Headers["correlation-id"])
		require.JSONEq(t, `{"total":3}`, string(ev.Data))
		require.Equal(t, conveyor.StatusPending, ev.Status)
		require.Equal(t, 1, ev.Attempts)
		require.Equal(t, "relay-1", ev.LockedBy)
		require.Equal(t, got[0].LeaseToken, ev.LeaseToken)
		require.WithinDuration(t, time.Now().Add(time.Minute), ev.LockedUntil, 30*time.Second)
		require.False(t, ev.CreatedAt.IsZero())
		require.True(t, ev.PublishedAt.IsZero())
		require.Empty(t, d.Audit)
	})

	t.Run("RetryDeadKeepsKeyOrder", func(t *testing.T) {
		t.Parallel()
		b := h.setup(t)
		op, ctx := b.op(), context.Background()
		a := b.keyed("A", 3)
		b.kill("rejected", false, a[0]) // on_dead: skip, but a[1] and a[2] have not gone yet
		res, err := op.RetryDead(ctx, &store.ChangeParams{Filter: store.Filter{Key: "A"}, Actor: actor, Detail: "--key A; reason: fixed"})
		require.NoError(t, err)
		require.Equal(t, a[:1], res.IDs)
		require.False(t, res.More)
		st := b.state(a[0])
		require.Equal(t, conveyor.StatusPending, st.Status)
		require.Equal(t, 0, st.Attempts)
		require.Equal(t, "rejected", st.LastError.String, "last_error is kept")
		require.False(t, st.LockedBy.Valid)
		// The retried event is the oldest pending event of its key again.
		require.Equal(t, a[:1], ids(b.claim("r1", 10, 1, time.Minute)))
		audit := b.audit()
		require.Len(t, audit, 1)
		require.Equal(t, auditRow{Actor: actor, Action: "retry", Detail: "--key A; reason: fixed", Event: audit[0].Event}, audit[0])
		require.True(t, sameID(audit[0].Event, a[0]))
	})

	t.Run("RetryUnblocksBlockedKeyInOrder", func(t *testing.T) {
		t.Parallel()
		b := h.setup(t)
		a := b.keyed("A", 3)
		b.kill("rejected", true, a[0])
		require.Empty(t, b.claim("r1", 10, 5, time.Minute), "blocked")
		got := drain(t, b.op().RetryDead, store.ChangeParams{Filter: store.Filter{IDs: a[:1]}, Actor: actor})
		require.Equal(t, a[:1], got)
		require.Equal(t, a, ids(b.claim("r1", 10, 5, time.Minute)), "the retried head first, then its key")
		// Retrying again changes nothing: it is no longer dead.
		require.Empty(t, drain(t, b.op().RetryDead, store.ChangeParams{Actor: actor}))
		require.Len(t, b.audit(), 1)
	})

	t.Run("DiscardUnblocksKeyAndKeepsRow", func(t *testing.T) {
		t.Parallel()
		b := h.setup(t)
		op, ctx := b.op(), context.Background()
		a := b.keyed("A", 2)
		b.kill("rejected", true, a[0])
		require.Empty(t, b.claim("r1", 10, 5, time.Minute), "blocked")
		res, err := op.DiscardDead(ctx, &store.ChangeParams{Filter: store.Filter{Error: "REJECTED"}, Actor: actor, Detail: "reason: bad payload"})
		require.NoError(t, err)
		require.Equal(t, a[:1], res.IDs)
		require.Equal(t, a[1:], ids(b.claim("r1", 10, 5, time.Minute)), "the key moves on")
		d, err := op.GetEvent(ctx, &store.GetEventParams{ID: a[0]})
		require.NoError(t, err)
		require.Equal(t, conveyor.StatusDead, d.Event.Status, "the row stays")
		require.False(t, d.Event.DiscardedAt.IsZero())
		require.False(t, d.Event.BlocksKey)
		require.Equal(t, "rejected", d.Event.LastError)
		require.Len(t, d.Audit, 1)
		require.Equal(t, store.AuditEntry{ID: d.Audit[0].ID, At: d.Audit[0].At, Actor: actor, Action: "discard", EventID: a[0], Detail: "reason: bad payload"}, d.Audit[0])
		require.WithinDuration(t, time.Now(), d.Audit[0].At, time.Minute)
		dead := []conveyor.Status{conveyor.StatusDead}
		require.Empty(t, b.list(store.ListEventsParams{Statuses: dead}), "discarded events are hidden")
		require.Equal(t, a[:1], b.list(store.ListEventsParams{Statuses: dead, IncludeDiscarded: true}))
		// A discarded event can no longer be retried or discarded again.
		require.Empty(t, drain(t, op.RetryDead, store.ChangeParams{Actor: actor}))
		require.Empty(t, drain(t, op.DiscardDead, store.ChangeParams{Actor: actor}))
	})

	t.Run("ReplayKeepsIDs", func(t *testing.T) {
		t.Parallel()
		b := h.setup(t)
		op, ctx := b.op(), context.Background()
		a := b.keyed("A", 3)
		other := b.insert(&outbox.Event{Type: "other"})
		b.publishAll()
		pending := b.keyed("A", 1) // arrives after: the replayed events go first
		got := drain(t, op.Replay, store.ChangeParams{Filter: store.Filter{Type: "t"}, Actor: actor, Limit: 2})
		require.Equal(t, a, got)
		for _, id := range a {
			st := b.state(id)
			require.Equal(t, conveyor.StatusPending, st.Status)
			require.Equal(t, 0, st.Attempts)
		}
		require.Equal(t, conveyor.StatusPublished, b.state(other[0]).Status)
		require.Equal(t, append(append([]uuid.UUID{}, a...), pending...), ids(b.claim("r1", 10, 10, time.Minute)), "same ids, in key order")
		require.Len(t, b.audit(), 3)
		for i, row := range b.audit() {
			require.Equal(t, "replay", row.Action)
			require.True(t, sameID(row.Event, a[i]))
		}
		// Only published events are replayed.
		res, err := op.Replay(ctx, &store.ChangeParams{Actor: actor})
		require.NoError(t, err)
		require.Equal(t, other, res.IDs)
	})

	t.Run("ReplayThroughIDDoesNotChase", func(t *testing.T) {
		t.Parallel()
		b := h.setup(t)
		a := b.keyed("A", 4)
		b.publishAll()
		got := drain(t, b.op().Replay, store.ChangeParams{ThroughID: a[1], Actor: actor, Limit: 1})
		require.Equal(t, a[:2], got)
	})

	t.Run("PurgeWalkEndsAtTheFirstYoungRow", func(t *testing.T) {
		// Ids are UUIDv7, so past the first row created after the cutoff (less the clock
		// margin) nothing can be old enough: the walk ends there rather than reading the
		// rest of the table. A row out of id order waits for a later run.
		t.Parallel()
		b := h.setup(t)
		op, ctx := b.op(), context.Background()
		old := b.insert(&outbox.Event{Type: "t"}, &outbox.Event{Type: "t"})
		young := b.insert(&outbox.Event{Type: "t"})
		late := b.insert(&outbox.Event{Type: "t"})
		b.publishAll()
		for _, id := range append(old, late...) {
			b.exec(`UPDATE conveyor_event SET published_at = `+b.ago(48*time.Hour)+`, created_at = `+b.ago(48*time.Hour)+` WHERE id = ?`, b.idArg(id))
		}
		res, err := op.Purge(ctx, &store.PurgeParams{PublishedOlderThan: 24 * time.Hour, Actor: actor, Limit: 100})
		require.NoError(t, err)
		require.Equal(t, int64(2), res.Published)
		require.False(t, res.More, "the walk ends at the young row")
		require.Equal(t, old[1], res.LastID)
		require.Equal(t, 2, b.count("status = 1"), "the young row and the one after it stay")

		// Once the young row is old too, the walk goes on past it.
		b.exec(`UPDATE conveyor_event SET published_at = `+b.ago(30*time.Hour)+`, created_at = `+b.ago(30*time.Hour)+` WHERE id = ?`, b.idArg(young[0]))
		res, err = op.Purge(ctx, &store.PurgeParams{PublishedOlderThan: 24 * time.Hour, Actor: actor, Limit: 100})
		require.NoError(t, err)
		require.Equal(t, int64(2), res.Published)
		require.Zero(t, b.count("status = 1"))

		// A window of Limit rows that holds no young row says there may be more.
		b.insert(&outbox.Event{Type: "t"}, &outbox.Event{Type: "t"}, &outbox.Event{Type: "t"})
		b.publishAll()
		b.exec(`UPDATE conveyor_event SET published_at = ` + b.ago(48*time.Hour) + `, created_at = ` + b.ago(48*time.Hour))
		res, err = op.Purge(ctx, &store.PurgeParams{PublishedOlderThan: 24 * time.Hour, Actor: actor, Limit: 2})
		require.NoError(t, err)
		require.Equal(t, int64(2), res.Published)
		require.True(t, res.More)
	})

	t.Run("PurgeNeverPendingLeavesDead", func(t *testing.T) {
		t.Parallel()
		b := h.setup(t)
		op, ctx := b.op(), context.Background()
		b.insert(&outbox.Event{Type: "t"}, &outbox.Event{Type: "t"}, &outbox.Event{Type: "t"})
		dead := b.insert(&outbox.Event{Type: "d"})
		b.kill("boom", false, dead...)
		b.publishAll()
		b.exec(`UPDATE conveyor_event SET published_at = ` + b.ago(48*time.Hour) + ` WHERE status = 1`)
		b.exec(`UPDATE conveyor_event SET created_at = ` + b.ago(48*time.Hour))
		b.insert(&outbox.Event{Type: "p"}, &outbox.Event{Type: "p", DeliverAt: time.Now().Add(time.Hour)})
		b.exec(`UPDATE conveyor_event SET created_at = ` + b.ago(48*time.Hour) + ` WHERE status = 0`)

		// Younger than the cutoff: nothing goes.
		res, err := op.Purge(ctx, &store.PurgeParams{PublishedOlderThan: 72 * time.Hour, DeadOlderThan: 72 * time.Hour, Actor: actor})
		require.NoError(t, err)
		require.Zero(t, res.Deleted())

		dry, err := op.Purge(ctx, &store.PurgeParams{PublishedOlderThan: 24 * time.Hour, DeadOlderThan: 24 * time.Hour, Actor: actor, Limit: 1, DryRun: true})
		require.NoError(t, err)
		require.Equal(t, &store.PurgeResult{Published: 3, Dead: 1}, dry)
		require.Equal(t, 3, b.count("status = 1"), "a dry run deletes nothing")
		require.Empty(t, b.audit())

		var total int64
		var batches int
		p := store.PurgeParams{PublishedOlderThan: 24 * time.Hour, Actor: actor, Limit: 2, Detail: "conveyor purge --older-than 1d"}
		for {
			res, err := op.Purge(ctx, &p)
			require.NoError(t, err)
			total += res.Deleted()
			require.Zero(t, res.Dead, "dead events stay without DeadOlderThan")
			batches++
			if !res.More {
				break
			}
			p.AfterID = res.LastID
		}
		require.Equal(t, int64(3), total)
		require.Equal(t, 0, b.count("status = 1"))
		require.Equal(t, 1, b.count("status = 2"))
		require.Equal(t, 2, b.count("status = 0"))
		audit := b.audit()
		require.Len(t, audit, 2, "one audit row per batch that deleted")
		require.Nil(t, audit[0].Event)
		require.Equal(t, "purge", audit[0].Action)
		require.Contains(t, audit[0].Detail, "conveyor purge --older-than 1d: deleted 2 rows; 2 published before ")
		require.Contains(t, audit[1].Detail, "deleted 1 rows; 1 published before ")

		res, err = op.Purge(ctx, &store.PurgeParams{PublishedOlderThan: 24 * time.Hour, DeadOlderThan: 24 * time.Hour, Actor: actor})
		require.NoError(t, err)
		require.Equal(t, int64(1), res.Dead)
		require.Equal(t, 0, b.count("status = 2"))
		require.Equal(t, 2, b.count("status = 0"), "pending events are never purged, however old")
		require.Contains(t, b.audit()[2].Detail, "1 dead created before ")
	})

	t.Run("PurgeRacesClaimLoop", func(t *testing.T) {
		t.Parallel()
		b := h.setup(t)
		op := b.op()
		const writers, perWriter = 2, 150
		var (
			mu       sync.Mutex
			inserted = map[uuid.UUID]bool{}
			seen     = map[uuid.UUID]bool{}
			writing  atomic.Int32
		)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var wg sync.WaitGroup
		writing.Store(writers)
		for w := range writers {
			wg.Go(func() {
				defer writing.Add(-1)
				for i := range perWriter {
					key := fmt.Sprintf("k%d", i%7)
					if i%3 == 0 {
						key = ""
					}
					got, err := outbox.Insert(context.Background(), b.db, b.h.Dialect, &outbox.Event{Type: "t", Source: "w", Key: key, Data: map[string]int{"w": w, "i": i}})
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					inserted[got[0]] = true
					mu.Unlock()
				}
			})
		}
		relayDone := make(chan struct{})
		go func() {
			defer close(relayDone)
			for idle := 0; idle < 30; {
				c, err := b.s.Claim(context.Background(), &store.ClaimParams{RelayID: "relay", Limit: 20, PerKey: 5, Lease: time.Minute})
				if err != nil {
					t.Error(err)
					return
				}
				if len(c) == 0 {
					if writing.Load() == 0 {
						idle++
					}
					time.Sleep(2 * time.Millisecond)
					continue
				}
				idle = 0
				outs := make([]store.Outcome, len(c))
				for i, e := range c {
					outs[i] = outcome(e, store.OutcomePublished)
					mu.Lock()
					seen[e.ID] = true
					mu.Unlock()
				}
				if _, err := b.s.Settle(context.Background(), &store.SettleParams{RelayID: "relay", Outcomes: outs}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		purged := int64(0)
		purgeDone := make(chan struct{})
		go func() {
			defer close(purgeDone)
			for ctx.Err() == nil {
				// published_at < now: everything already published may go at once.
				res, err := op.Purge(context.Background(), &store.PurgeParams{PublishedOlderThan: time.Nanosecond, DeadOlderThan: time.Nanosecond, Limit: 7, Actor: "janitor"})
				if err != nil {
					t.Error(err)
					return
				}
				atomic.AddInt64(&purged, res.Deleted())
				time.Sleep(time.Millisecond)
			}
		}()
		wg.Wait()
		<-relayDone
		cancel()
		<-purgeDone
		require.Len(t, inserted, writers*perWriter)
		for id := range inserted {
			require.True(t, seen[id], "event %s was never published: purge lost a pending event", id)
		}
		require.Equal(t, 0, b.count("status = 0"))
		require.Positive(t, atomic.LoadInt64(&purged), "the purge ran while the relay worked")
	})

	t.Run("InterruptedBatchesAreConsistentAndResumable", func(t *testing.T) {
		t.Parallel()
		b := h.setup(t)
		op := b.op()
		all := b.insert(func() []*outbox.Event {
			evs := make([]*outbox.Event, 10)
			for i := range evs {
				evs[i] = &outbox.Event{Type: "t"}
			}
			return evs
		}()...)
		b.kill("boom", false, all...)
		// A cancelled call changes nothing.
		cctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := op.RetryDead(cctx, &store.ChangeParams{Actor: actor, Limit: 3})
		require.Error(t, err)
		require.Equal(t, 10, b.count("status = 2"))
		require.Empty(t, b.audit())
		// One batch, then the operator stops: that batch is complete, rows and audit.
		res, err := op.RetryDead(context.Background(), &store.ChangeParams{Actor: actor, Limit: 3})
		require.NoError(t, err)
		require.Equal(t, all[:3], res.IDs)
		require.True(t, res.More)
		require.Equal(t, 3, b.count("status = 0"))
		require.Len(t, b.audit(), 3)
		// Running the same command again picks up where it stopped.
		got := drain(t, op.RetryDead, store.ChangeParams{Actor: actor, Limit: 3})
		require.Equal(t, all[3:], got)
		require.Equal(t, 10, b.count("status = 0"))
		require.Len(t, b.audit(), 10)
	})

	t.Run("Overview", func(t *testing.T) {
		t.Parallel()
		b := h.setup(t)
		x := b.insert(&outbox.Event{Type: "a", Key: "k"}, &outbox.Event{Type: "a", Key: "k"}, &outbox.Event{Type: "b"}, &outbox.Event{Type: "b"}, &outbox.Event{Type: "c", Key: "z"},
			&outbox.Event{Type: "d", Key: "only-pending"}) // a type whose rows are all pending and unleased
		b.kill("boom", true, x[0])
		b.kill("boom", false, x[4])
		_, err := b.op().DiscardDead(context.Background(), &store.ChangeParams{Filter: store.Filter{IDs: x[4:]}, Actor: actor})
		require.NoError(t, err)
		got := b.claim("relay-7", 1, 1, time.Minute)
		require.Equal(t, x[2:3], ids(got))
		ov, err := b.op().Overview(context.Background())
		require.NoError(t, err)
		require.Len(t, ov.ByType, 4)
		require.Equal(t, int64(1), ov.ByType[3].Pending)
		require.Equal(t, int64(0), ov.ByType[3].InFlight)
		require.Equal(t, "a", ov.ByType[0].EventType)
		require.Equal(t, int64(1), ov.ByType[0].Pending)
		require.Equal(t, int64(1), ov.ByType[0].Dead)
		require.Greater(t, ov.ByType[0].OldestPending, time.Duration(0))
		require.Equal(t, int64(2), ov.ByType[1].Pending)
		require.Equal(t, int64(1), ov.ByType[1].InFlight)
		require.Equal(t, int64(1), ov.ByType[2].Discarded)
		require.Equal(t, int64(0), ov.ByType[2].Dead)
		require.Equal(t, int64(1), ov.BlockedKeys)
		require.Len(t, ov.Leases, 1)
		require.Equal(t, "relay-7", ov.Leases[0].RelayID)
		require.Equal(t, int64(1), ov.Leases[0].Events)
		require.WithinDuration(t, time.Now().Add(time.Minute), ov.Leases[0].Until, 30*time.Second)
	})
}
