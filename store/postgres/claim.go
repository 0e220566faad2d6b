package postgres

// claimSQL leases a batch in one statement.
//
//   - heads walks the distinct pending keys with a loose index scan over
//     conveyor_event_claim_key_idx (key, id) WHERE key IS NOT NULL AND (status = 0 OR
//     blocks_key): one index descent per key, so a hot key with a million pending rows
//     costs one probe, not a million. A dead event that blocks its key (on_dead: block)
//     is a head too, and as it is not pending, its key is not claimable.
//   - keyed locks the claimable heads (available, unleased or lease expired), oldest
//     first, with SKIP LOCKED so concurrent relays take disjoint rows. FOR UPDATE re-checks
//     the lease condition on the newest row version, so a head just leased by another
//     relay is skipped.
//   - free does the same for events without a key (conveyor_event_claim_free_idx).
//   - followers extends each locked head with the next events of its key, up to
//     PerKey-1, stopping at the first one that is not claimable. Only the relay that locked
//     a head can take its followers, so a key never has events leased to two relays.
//   - The UPDATE bumps attempts (an attempt has started) and the fencing token.
const claimSQL = `
WITH RECURSIVE heads AS (
    (SELECT key, id FROM conveyor_event
      WHERE key IS NOT NULL AND (status = 0 OR blocks_key)
      ORDER BY key, id LIMIT 1)
    UNION ALL
    SELECT n.key, n.id FROM heads h CROSS JOIN LATERAL (
        SELECT key, id FROM conveyor_event
         WHERE key IS NOT NULL AND (status = 0 OR blocks_key) AND key > h.key
         ORDER BY key, id LIMIT 1) n
),
keyed AS (
    SELECT e.id, e.key FROM conveyor_event e
     WHERE e.id IN (SELECT id FROM heads)
       AND e.status = 0 AND e.available_at <= now()
       AND (e.locked_until IS NULL OR e.locked_until < now())
     ORDER BY e.id LIMIT $2
     FOR UPDATE SKIP LOCKED
),
free AS (
    SELECT e.id, e.key FROM conveyor_event e
     WHERE e.status = 0 AND e.key IS NULL AND e.available_at <= now()
       AND (e.locked_until IS NULL OR e.locked_until < now())
     ORDER BY e.id LIMIT $2
     FOR UPDATE SKIP LOCKED
),
picked AS (
    SELECT id, key FROM (SELECT id, key FROM keyed UNION ALL SELECT id, key FROM free) u
     ORDER BY id LIMIT $2
),
followers AS (
    SELECT f.id FROM picked p CROSS JOIN LATERAL (
        SELECT id FROM (
            SELECT id, bool_and(available_at <= now()
                   AND (locked_until IS NULL OR locked_until < now())) OVER (ORDER BY id) AS ok
              FROM (SELECT id, available_at, locked_until FROM conveyor_event
                     WHERE key = p.key AND status = 0 AND id > p.id
                     ORDER BY id LIMIT $4) run
        ) r WHERE ok
    ) f
    WHERE p.key IS NOT NULL
)
UPDATE conveyor_event e
   SET locked_by = $1,
       locked_until = now() + make_interval(secs => $3),
       lease_token = e.lease_token + 1,
       attempts = e.attempts + 1
 WHERE e.id IN (SELECT id FROM picked UNION ALL SELECT id FROM followers)
RETURNING e.id, e.event_type, e.source, e.key, e.subject, e.data::text, e.headers::text,
          e.idempotency_key, e.created_at, e.available_at, e.attempts, e.lease_token`

// settleSQL applies a batch of outcomes with fencing: a row is only touched when the
// caller still holds its lease (same relay, same token, not expired on the DB clock).
// kind: 0 published, 1 retry, 2 release (gives the attempt back), 3 dead.
//
// The fencing test is one expression over both e and o (IS TRUE), so the planner cannot
// apply it to e alone. As separate conditions it estimated them from the column
// statistics, where locked_by and locked_until are NULL on nearly every row (only
// in-flight rows hold a lease): "1 row" for e, hence a plan that scanned the table once
// and compared every row with every element of the arrays. A 10,000-row settle took 25 s
// on 100k rows and timed out; with the join driven by e.id = o.id it takes ~0.15 s.
const settleSQL = `
UPDATE conveyor_event e
   SET status = CASE o.kind WHEN 0 THEN 1 WHEN 3 THEN 2 ELSE 0 END,
       published_at = CASE WHEN o.kind = 0 THEN now() ELSE e.published_at END,
       attempts = CASE WHEN o.kind = 2 THEN greatest(e.attempts - 1, 0) ELSE e.attempts END,
       available_at = CASE WHEN o.kind IN (1, 2)
                           THEN now() + make_interval(secs => o.delay_ms / 1000.0)
                           ELSE e.available_at END,
       last_error = CASE WHEN o.err <> '' THEN o.err ELSE e.last_error END,
       blocks_key = o.kind = 3 AND o.block,
       locked_by = NULL,
       locked_until = NULL
  FROM unnest($2::uuid[], $3::bigint[], $4::int[], $5::bigint[], $6::text[], $7::bool[])
       AS o(id, token, kind, delay_ms, err, block)
 WHERE e.id = o.id
   AND (e.status = 0 AND e.locked_by = $1 AND e.lease_token = o.token
        AND e.locked_until > now()) IS TRUE
RETURNING e.id`
