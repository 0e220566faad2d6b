// Package storetest is the conformance suite every Store driver passes (river's
// riverdrivertest habit): the same claim, lease, fencing and settle rules on each database.
package storetest

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor"
	"github.com/conveyorhq/conveyor/outbox"
	"github.com/conveyorhq/conveyor/store"
)

// Harness adapts one driver to the suite.
type Harness struct {
	Dialect outbox.Dialect
	// New returns a store on a fresh database migrated by Django, plus a plain handle to
	// the same database for inspection.
	New func(t *testing.T) (store.Store, *sql.DB)
}

type bundle struct {
	t  *testing.T
	h  Harness
	s  store.Store
	db *sql.DB
}

func (h Harness) setup(t *testing.T) *bundle {
	t.Helper()
	s, db := h.New(t)
	return &bundle{t: t, h: h, s: s, db: db}
}

// q rewrites ? placeholders for PostgreSQL.
func (b *bundle) q(query string) string {
	if b.h.Dialect != outbox.Postgres {
		return query
	}
	var out strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			fmt.Fprintf(&out, "$%d", n)
			continue
		}
		out.WriteRune(r)
	}
	return out.String()
}

func (b *bundle) idArg(id uuid.UUID) any {
	if b.h.Dialect == outbox.SQLite || b.h.Dialect == outbox.MySQL {
		return hex.EncodeToString(id[:])
	}
	return id.String()
}

func (b *bundle) insert(evs ...*outbox.Event) []uuid.UUID {
	b.t.Helper()
	for _, ev := range evs {
		if ev.Source == "" {
			ev.Source = "storetest"
		}
		if ev.Data == nil {
			ev.Data = map[string]any{"n": 1}
		}
	}
	ids, err := outbox.Insert(context.Background(), b.db, b.h.Dialect, evs...)
	require.NoError(b.t, err)
	return ids
}

func (b *bundle) keyed(key string, n int) []uuid.UUID {
	evs := make([]*outbox.Event, n)
	for i := range evs {
		evs[i] = &outbox.Event{Type: "t", Key: key, Data: map[string]int{"seq": i}}
	}
	return b.insert(evs...)
}

type rowState struct {
	Status    conveyor.Status
	Attempts  int
	Token     int64
	LockedBy  sql.NullString
	LastError sql.NullString
}

func (b *bundle) state(id uuid.UUID) rowState {
	b.t.Helper()
	var r rowState
	err := b.db.QueryRow(b.q(`SELECT status, attempts, lease_token, locked_by, last_error FROM conveyor_event WHERE id = ?`),
		b.idArg(id)).Scan(&r.Status, &r.Attempts, &r.Token, &r.LockedBy, &r.LastError)
	require.NoError(b.t, err)
	return r
}

func (b *bundle) claim(relay string, limit, perKey int, lease time.Duration) []*store.Claimed {
	b.t.Helper()
	c, err := b.s.Claim(context.Background(), &store.ClaimParams{RelayID: relay, Limit: limit, PerKey: perKey, Lease: lease})
	require.NoError(b.t, err)
	return c
}

func (b *bundle) settle(relay string, outcomes ...store.Outcome) *store.SettleResult {
	b.t.Helper()
	r, err := b.s.Settle(context.Background(), &store.SettleParams{RelayID: relay, Outcomes: outcomes})
	require.NoError(b.t, err)
	return r
}

func ids(c []*store.Claimed) []uuid.UUID {
	out := make([]uuid.UUID, len(c))
	for i, e := range c {
		out[i] = e.ID
	}
	return out
}

func outcome(c *store.Claimed, k store.OutcomeKind) store.Outcome {
	return store.Outcome{ID: c.ID, LeaseToken: c.LeaseToken, Kind: k}
}

// Exercise runs the suite.
func Exercise(t *testing.T, h Harness) {
	exerciseOperator(t, h)
	t.Run("ClaimLeasesAndCountsAttempt", func(t *testing.T) {
		t.Parallel()
		b := h.setup(t)
		want := b.insert(&outbox.Event{Type: "order.placed", Subject: "o-1", Data: map[string]any{"total": "9.50"},
			Headers: map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}})
		got := b.claim("r1", 10, 1, time.Minute)
		require.Len(t, got, 1)
		require.Equal(t, want[0], got[0].ID)
		require.Equal(t, "order.placed", got[0].Type)
		require.Equal(t, "o-1", got[0].Subject)
		require.JSONEq(t, `{"total":"9.50"}`, string(got[0].Data))
		require.Equal(t, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", got[0].Headers["traceparent"])
		require.Equal(t, 1, got[0].Attempts)
		require.NoError(t, got[0].DecodeErr)
		require.False(t, got[0].CreatedAt.IsZero())
		st := b.state(want[0])
		require.Equal(t, "r1", st.LockedBy.String)
		require.Equal(t, got[0].LeaseToken, st.Token)
		require.Empty(t, b.claim("r2", 10, 1, time.Minute), "a leased row must not be claimed twice")
	})

	t.Run("PerKeyOnlyHeadIsClaimable", func(t *testing.T) {
		t.Parallel()
		b := h.setup(t)
		a := b.keyed("A", 3)
		free := b.insert(&outbox.Event{Type: "t"}, &outbox.Event{Type: "t"})
		got := b.claim("r1", 10, 1, time.Minute)
		require.ElementsMatch(t, []uuid.UUID{a[0], free[0], free[1]}, ids(got))
		require.Empty(t, b.claim("r2", 10, 1, time.Minute), "a key with an event in flight has nothing claimable")
		res := b.settle("r1", outcome(got[0], store.OutcomePublished), outcome(got[1], store.OutcomePublished), outcome(got[2], store.OutcomePublished))
		require.Empty(t, res.LeaseLost)
		require.Equal(t, []uuid.UUID{a[1]}, ids(b.claim("r2", 10, 1, time.Minute)))
	})

	t.Run("PerKeyRunInOrder", func(t *testing.T) {
		t.Parallel()
		b := h.setup(t)
		a := b.keyed("A", 5)
		bb := b.keyed("B", 2)
		got := b.claim("r1", 10, 3, time.Minute)
		require.Equal(t, []uuid.UUID{a[0], a[1], a[2], bb[0], bb[1]}, ids(got))
		require.Empty(t, b.claim("r2", 10, 3, time.Minute))
	})

	t.Run("RetryWaitsInPlace", func(t *testing.T) {
		t.Parallel()
		b := h.setup(t)
		a := b.keyed("A", 2)
		got := b.claim("r1", 10, 1, time.Minute)
		require.Equal(t, []uuid.UUID{a[0]}, ids(got))
		o := outcome(got[0], store.OutcomeRetry)
		o.Delay, o.Error = time.Hour, "boom"
		require.Empty(t, b.settle("r1", o).LeaseLost)
		st := b.state(a[0])
		require.Equal(t, conveyor.StatusPending, st.Status)
		require.Equal(t, 1, st.Attempts)
		require.Equal(t, "boom", st.LastError.String)
		require.False(t, st.LockedBy.Valid)
		require.Empty(t, b.claim("r1", 10, 5, time.Minute), "the later event must wait behind its retrying head")
	})

	t.Run("ReleaseGivesAttemptBack", func(t *testing.T) {
		t.Parallel()
		b := h.setup(t)
		a := b.keyed("A", 1)
		got := b.claim("r1", 10, 1, time.Minute)
		o := outcome(got[0], store.OutcomeRelease)
		o.Error = "broker down"
		b.settle("r1", o)
		st := b.state(a[0])
		require.Equal(t, 0, st.Attempts)
		again := b.claim("r2", 10, 1, time.Minute)
		require.Equal(t, a, ids(again))
		require.Greater(t, again[0].LeaseToken, got[0].LeaseToken)
	})

	t.Run("DeadLetsKeyMoveOn", func(t *testing.T) {
		t.Parallel()
		b := h.setup(t)
		a := b.keyed("A", 2)
		got := b.claim("r1", 10, 1, time.Minute)
		o := outcome(got[0], store.OutcomeDead)
		o.Error = "too large"
		b.settle("r1", o)
		st := b.state(a[0])
		require.Equal(t, conveyor.StatusDead, st.Status)
		require.Equal(t, "too large", st.LastError.String)
		require.Equal(t, []uuid.UUID{a[1]}, ids(b.claim("r1", 10, 1, time.Minute)))
	})

	t.Run("DeadBlockingHoldsKeyUntilRetried", func(t *testing.T) {
		t.Parallel()
		b := h.setup(t)
		a := b.keyed("A", 2)
		other := b.keyed("B", 1)
		got := b.claim("r1", 10, 1, time.Minute)
		require.ElementsMatch(t, []uuid.UUID{a[0], other[0]}, ids(got))
		var headA *store.Claimed
		for _, c := range got {
			if c.ID == a[0] {
				headA = c
			} else {
				b.settle("r1", outcome(c, store.OutcomePublished))
			}
		}
		o := outcome(headA, store.OutcomeDead)
		o.Error, o.BlockKey = "rejected", true
		b.settle("r1", o)
		require.Equal(t, conveyor.StatusDead, b.state(a[0]).Status)
		require.Empty(t, b.claim("r1", 10, 5, time.Minute), "a blocking dead event holds its key")
		// The operator retries it: pending again, attempts reset, no longer blocking.
		_, err := b.db.Exec(b.q(`UPDATE conveyor_event SET status = 0, attempts = 0, blocks_key = ? WHERE id = ?`), false, b.idArg(a[0]))
		require.NoError(t, err)
		require.Equal(t, []uuid.UUID{a[0], a[1]}, ids(b.claim("r1", 10, 5, time.Minute)), "order kept after the retry")
	})

	t.Run("FencingRefusesStaleSettle", func(t *testing.T) {
		t.Parallel()
		b := h.setup(t)
		a := b.keyed("A", 1)
		old := b.claim("r1", 10, 1, 200*time.Millisecond)
		require.Len(t, old, 1)
		time.Sleep(400 * time.Millisecond)
		// The lease expired: r1 may no longer settle, even before anyone else claims.
		res := b.settle("r1", outcome(old[0], store.OutcomePublished))
		require.Equal(t, a, res.LeaseLost)
		fresh := b.claim("r2", 10, 1, time.Minute)
		require.Equal(t, a, ids(fresh))
		require.Equal(t, 2, fresh[0].Attempts)
		// r1's token is stale now as well.
		require.Equal(t, a, b.settle("r1", outcome(old[0], store.OutcomePublished)).LeaseLost)
		require.Empty(t, b.settle("r2", outcome(fresh[0], store.OutcomePublished)).LeaseLost)
		require.Equal(t, conveyor.StatusPublished, b.state(a[0]).Status)
		// A settled row cannot be settled again.
		require.Equal(t, a, b.settle("r2", outcome(fresh[0], store.OutcomeDead)).LeaseLost)
		require.Equal(t, conveyor.StatusPublished, b.state(a[0]).Status)
	})

	t.Run("DeliverAtIsHonoured", func(t *testing.T) {
		t.Parallel()
		b := h.setup(t)
		b.insert(&outbox.Event{Type: "t", DeliverAt: time.Now().Add(time.Hour)})
		now := b.insert(&outbox.Event{Type: "t"})
		require.Equal(t, now, ids(b.claim("r1", 10, 1, time.Minute)))
	})

	t.Run("BadRowsAreReported", func(t *testing.T) {
		t.Parallel()
		b := h.setup(t)
		id := b.insert(&outbox.Event{Type: "t"})[0]
		_, err := b.db.Exec(b.q(`UPDATE conveyor_event SET event_type = '' WHERE id = ?`), b.idArg(id))
		require.NoError(t, err)
		got := b.claim("r1", 10, 1, time.Minute)
		require.Len(t, got, 1)
		require.ErrorContains(t, got[0].DecodeErr, "event_type is empty")
	})

	t.Run("ConcurrentClaimersNeverShareAKey", func(t *testing.T) {
		t.Parallel()
		b := h.setup(t)
		const keys, perKey = 20, 15
		var all []uuid.UUID
		for k := range keys {
			all = append(all, b.keyed(fmt.Sprintf("k%d", k), perKey)...)
		}
		all = append(all, b.insert(&outbox.Event{Type: "t"}, &outbox.Event{Type: "t"}, &outbox.Event{Type: "t"})...)
		var (
			mu       sync.Mutex
			inFlight = map[string]string{} // key -> relay
			seen     = map[uuid.UUID]int{}
			order    = map[string][]int{}
		)
		var wg sync.WaitGroup
		for r := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				relay := fmt.Sprintf("r%d", r)
				for idle := 0; idle < 20; {
					c, err := b.s.Claim(context.Background(), &store.ClaimParams{RelayID: relay, Limit: 7, PerKey: 3, Lease: time.Minute})
					if err != nil {
						t.Error(err)
						return
					}
					if len(c) == 0 {
						idle++
						time.Sleep(5 * time.Millisecond)
						continue
					}
					idle = 0
					mu.Lock()
					for _, e := range c {
						if e.Key != "" {
							if other, ok := inFlight[e.Key]; ok && other != relay {
								t.Errorf("key %s in flight on %s and %s", e.Key, other, relay)
							}
							inFlight[e.Key] = relay
							var seq struct{ Seq int }
							_ = jsonUnmarshal(e.Data, &seq)
							order[e.Key] = append(order[e.Key], seq.Seq)
						}
						seen[e.ID]++
					}
					for _, e := range c {
						delete(inFlight, e.Key)
					}
					mu.Unlock()
					outs := make([]store.Outcome, len(c))
					for i, e := range c {
						outs[i] = outcome(e, store.OutcomePublished)
					}
					// Release the key bookkeeping before settling: the next claim of a key
					// can only happen after this settle commits.
					res, err := b.s.Settle(context.Background(), &store.SettleParams{RelayID: relay, Outcomes: outs})
					if err != nil {
						t.Error(err)
						return
					}
					if len(res.LeaseLost) > 0 {
						t.Errorf("lease lost without expiry: %v", res.LeaseLost)
					}
				}
			}()
		}
		wg.Wait()
		require.Len(t, seen, len(all))
		for id, n := range seen {
			require.Equal(t, 1, n, "event %s claimed %d times", id, n)
		}
		for k, seqs := range order {
			for i, s := range seqs {
				require.Equal(t, i, s, "key %s out of order: %v", k, seqs)
			}
		}
	})

	t.Run("CheckAcceptsMigratedSchema", func(t *testing.T) {
		t.Parallel()
		b := h.setup(t)
		require.NoError(t, b.s.Check(context.Background()))
	})

	t.Run("CheckRejectsUnknownMigration", func(t *testing.T) {
		t.Parallel()
		b := h.setup(t)
		_, err := b.db.Exec(b.q(`INSERT INTO django_migrations (app, name, applied) VALUES ('conveyor', '9999_future', CURRENT_TIMESTAMP)`))
		require.NoError(t, err)
		err = b.s.Check(context.Background())
		require.ErrorIs(t, err, conveyor.ErrSchemaUnknown)
		require.ErrorContains(t, err, "9999_future")
	})

	t.Run("CheckNamesMissingMigration", func(t *testing.T) {
		t.Parallel()
		b := h.setup(t)
		_, err := b.db.Exec(b.q(`DELETE FROM django_migrations WHERE app = 'conveyor'`))
		require.NoError(t, err)
		require.ErrorContains(t, b.s.Check(context.Background()), "python manage.py migrate conveyor")
	})

	t.Run("CheckMissingTable", func(t *testing.T) {
		t.Parallel()
		b := h.setup(t)
		_, err := b.db.Exec(`DROP TABLE conveyor_event`)
		require.NoError(t, err)
		require.ErrorIs(t, b.s.Check(context.Background()), conveyor.ErrSchemaMissing)
	})

	t.Run("Backlog", func(t *testing.T) {
		t.Parallel()
		b := h.setup(t)
		b.insert(&outbox.Event{Type: "a"}, &outbox.Event{Type: "a"}, &outbox.Event{Type: "b"})
		got := b.claim("r1", 1, 1, time.Minute)
		b.settle("r1", outcome(got[0], store.OutcomePublished))
		bl, err := b.s.Backlog(context.Background())
		require.NoError(t, err)
		require.Equal(t, map[string]int64{"a": 1, "b": 1}, bl.ByType)
		require.False(t, bl.Truncated)
		require.GreaterOrEqual(t, bl.OldestByType["a"], time.Duration(0))
	})

	t.Run("Stats", func(t *testing.T) {
		t.Parallel()
		b := h.setup(t)
		b.keyed("A", 3)
		got := b.claim("r1", 10, 1, time.Minute)
		b.settle("r1", outcome(got[0], store.OutcomePublished))
		st, err := b.s.Stats(context.Background())
		require.NoError(t, err)
		require.Equal(t, int64(2), st.Pending)
		require.Equal(t, int64(1), st.Published)
		require.Equal(t, int64(0), st.Dead)
		require.Greater(t, st.OldestPending, time.Duration(0))
	})
}
