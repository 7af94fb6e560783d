-- The backlog of every queue for metrics: available, scheduled, leased and dead counts,
-- and the run_at of the longest-waiting available job. Cheap on deep queues:
--
-- * Counts are exact up to $1 per queue and state, read from the partial indexes
--   (`jobs_runnable`, `dead_letters_queue_failed_at`) with a LIMIT, so each stops after
--   $1 + 1 index entries per priority (index-only once autovacuum has set the visibility
--   map). The LIMIT sits inside each per-priority scan: with it outside, over a lateral
--   join, the planner was seen to flatten the join into a hash join over a sequential scan
--   of the whole table once a queue was a million deep (2 s instead of 30 ms). The leased
--   count is always exact: it adds up the ids of the queue's leases (a row per batch).
-- * The runnable set is read per (queue, priority): `heads` walks the distinct priorities
--   of each queue with one index descent each (a loose index scan) and yields the earliest
--   run_at of each, which gives the oldest available job; the available (run_at <= now)
--   and scheduled (run_at > now) counts are then range scans within each priority, so
--   neither walks through the other's entries.
-- * A count above $1 is estimated instead from a block sample of about $2 rows of
--   its table (TABLESAMPLE SYSTEM): the queue's and state's share of the sample times the
--   table's row count as the planner estimates it. The sample is only taken when some
--   count went over the bound.
--
-- Run it with `jit = off`: its cost estimate is large, and compiling it would cost more
-- than running it.
WITH RECURSIVE args AS MATERIALIZED (
    SELECT $1::bigint AS cap, $2::float8 AS sample_rows, now() AS now
),
heads AS (
    SELECT q.id AS queue_id, h.priority, h.run_at
    FROM pgqrs.queues q
    CROSS JOIN LATERAL (
        SELECT j.priority, j.run_at FROM pgqrs.jobs j
        WHERE j.queue_id = q.id AND j.lease_token IS NULL
        ORDER BY j.priority DESC, j.run_at, j.id LIMIT 1
    ) h
    UNION ALL
    SELECT p.queue_id, n.priority, n.run_at
    FROM heads p
    CROSS JOIN LATERAL (
        SELECT j.priority, j.run_at FROM pgqrs.jobs j
        WHERE j.queue_id = p.queue_id AND j.lease_token IS NULL AND j.priority < p.priority
        ORDER BY j.priority DESC, j.run_at, j.id LIMIT 1
    ) n
),
counted AS MATERIALIZED (
    SELECT q.id, q.name,
        (SELECT coalesce(sum(x.n), 0)::bigint FROM heads h CROSS JOIN LATERAL (
            SELECT count(*) AS n FROM (
                SELECT 1 FROM pgqrs.jobs j
                WHERE j.queue_id = h.queue_id AND j.lease_token IS NULL
                  AND j.priority = h.priority AND j.run_at <= a.now
                LIMIT a.cap + 1) s) x
         WHERE h.queue_id = q.id) AS available,
        (SELECT coalesce(sum(x.n), 0)::bigint FROM heads h CROSS JOIN LATERAL (
            SELECT count(*) AS n FROM (
                SELECT 1 FROM pgqrs.jobs j
                WHERE j.queue_id = h.queue_id AND j.lease_token IS NULL
                  AND j.priority = h.priority AND j.run_at > a.now
                LIMIT a.cap + 1) s) x
         WHERE h.queue_id = q.id) AS scheduled,
        (SELECT coalesce(sum(cardinality(l.ids)), 0)::bigint FROM pgqrs.leases l
         WHERE l.queue_id = q.id) AS leased,
        (SELECT count(*) FROM (
            SELECT 1 FROM pgqrs.dead_letters d WHERE d.queue_id = q.id LIMIT a.cap + 1) s) AS dead,
        (SELECT min(h.run_at) FROM heads h WHERE h.queue_id = q.id AND h.run_at <= a.now)
            AS oldest_available_at
    FROM pgqrs.queues q, args a
),
fraction AS MATERIALIZED (
    -- The sampling percentage, and the table's current row count as the planner estimates
    -- it: rows per page at the last vacuum or analyze, times the pages now.
    SELECT c.oid,
           least(100, 100 * (SELECT sample_rows FROM args) / greatest(c.reltuples, 1))::float8 AS pct,
           CASE WHEN c.relpages > 0 AND c.reltuples >= 0 THEN
               c.reltuples / c.relpages
                   * (pg_relation_size(c.oid) / current_setting('block_size')::float8)
           END AS total
    FROM pg_class c
    WHERE c.oid IN ('pgqrs.jobs'::regclass, 'pgqrs.dead_letters'::regclass)
),
jobs_sample AS MATERIALIZED (
    SELECT j.queue_id,
           count(*) FILTER (WHERE j.lease_token IS NULL AND j.run_at <= (SELECT now FROM args)) AS available,
           count(*) FILTER (WHERE j.lease_token IS NULL AND j.run_at > (SELECT now FROM args)) AS scheduled,
           sum(count(*)) OVER () AS sampled
    FROM pgqrs.jobs j
    TABLESAMPLE SYSTEM ((SELECT pct FROM fraction WHERE oid = 'pgqrs.jobs'::regclass))
    GROUP BY j.queue_id
),
dead_sample AS MATERIALIZED (
    SELECT d.queue_id, count(*) AS dead, sum(count(*)) OVER () AS sampled
    FROM pgqrs.dead_letters d
    TABLESAMPLE SYSTEM ((SELECT pct FROM fraction WHERE oid = 'pgqrs.dead_letters'::regclass))
    GROUP BY d.queue_id
),
-- What one sampled row stands for: the table's estimated rows over the rows sampled (the
-- share of a queue in the sample, times the table), or, without an estimate, the inverse
-- of the sampling fraction.
scale AS MATERIALIZED (
    SELECT (SELECT coalesce(f.total / nullif((SELECT max(s.sampled) FROM jobs_sample s), 0),
                            100 / f.pct)
            FROM fraction f WHERE f.oid = 'pgqrs.jobs'::regclass) AS jobs,
           (SELECT coalesce(f.total / nullif((SELECT max(s.sampled) FROM dead_sample s), 0),
                            100 / f.pct)
            FROM fraction f WHERE f.oid = 'pgqrs.dead_letters'::regclass) AS dead
)
SELECT c.name AS "name!",
    CASE WHEN c.available <= a.cap THEN c.available ELSE greatest(a.cap,
        (SELECT round(s.available * x.jobs)::bigint FROM jobs_sample s, scale x WHERE s.queue_id = c.id)) END AS "available!",
    CASE WHEN c.scheduled <= a.cap THEN c.scheduled ELSE greatest(a.cap,
        (SELECT round(s.scheduled * x.jobs)::bigint FROM jobs_sample s, scale x WHERE s.queue_id = c.id)) END AS "scheduled!",
    c.leased AS "leased!",
    CASE WHEN c.dead <= a.cap THEN c.dead ELSE greatest(a.cap,
        (SELECT round(s.dead * x.dead)::bigint FROM dead_sample s, scale x WHERE s.queue_id = c.id)) END AS "dead!",
    greatest(c.available, c.scheduled, c.dead) > a.cap AS "estimated!",
    c.oldest_available_at,
    a.now AS "now!"
FROM counted c, args a
ORDER BY c.name
