-- The claim with less work per batch (see pgqrs-bench/RESULTS.md, scenarios C and L).
--
-- `pgqrs.jobs` holds waiting jobs only since 0008: a claim deletes its rows, and the only
-- updates left (`run_at`, when a delayed job is hurried or a parked run woken) change an
-- indexed column, so they are never HOT. The free space fillfactor 85 kept in every page
-- for in-place updates is of no use now, and costs pages: 15% more heap to walk and, after
-- each checkpoint, to write in full to the WAL. New pages are filled completely.
ALTER TABLE pgqrs.jobs SET (fillfactor = 100);

-- The claim function, leaner; what it does is unchanged (0007 and 0008 say what that is),
-- but for the rows it returns: a first row with the queue's controls and the archived ids
-- and no job, then one row per job claimed. Per call it now
--
-- * reads the queue's controls with the ack, in PL/pgSQL variables, instead of joining
--   them (and the arguments, and the budget) into the claim statement: that statement is
--   now the archive insert itself, and its plan has 26 lines instead of 68 (all started
--   and ended on every call);
-- * takes the picked jobs by their address (`ctid`), not by a walk down `jobs_pkey` for
--   each: a row the scan locked cannot move or go before the transaction ends. A row
--   updated since the statement's snapshot (a delayed job hurried) is locked at its new
--   address, which the snapshot does not see: it is not taken, and waits for the next
--   claim, neither lost nor taken twice;
-- * acks, reads the queue's controls and looks for expired leases in one statement, with
--   or without jobs to ack; relabels the acked jobs only for an outcome other than
--   `completed`, and deletes their unique keys only when their queue holds any (one probe,
--   not one per job: most queues hold none).
CREATE OR REPLACE FUNCTION pgqrs.job_claim_batch(integer, bigint, float8, bigint, boolean, bigint[], bigint[], text)
RETURNS TABLE (
    paused boolean,
    global_concurrency integer,
    archived bigint[],
    id bigint,
    payload text,
    priority smallint,
    attempts integer,
    enqueued_at timestamptz,
    lease_token bigint,
    lease_expires_at timestamptz
)
LANGUAGE plpgsql
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    settled bigint[] := '{}';
    rest bigint[];
    keyed boolean;
    expired boolean;
    queue_paused boolean;
    queue_cap integer;
    claim_budget bigint;
    claim_expires timestamptz;
BEGIN
    -- The common ack (every job of the held leases completed), the queue's controls, and
    -- whether the queue has expired leases to hand back: one statement.
    WITH dropped AS (
        DELETE FROM pgqrs.leases l
        WHERE l.token = ANY ($7) AND l.ids <@ $6
        RETURNING l.ids, l.queue_id
    )
    SELECT coalesce((SELECT array_agg(x) FROM dropped d, unnest(d.ids) x), '{}'),
           -- Most queues hold no unique keys: then there are none to delete.
           EXISTS (SELECT 1 FROM pgqrs.job_keys k WHERE k.queue_id IN (SELECT d.queue_id FROM dropped d)),
           q.paused,
           q.global_concurrency,
           EXISTS (SELECT 1 FROM pgqrs.leases l WHERE l.queue_id = $1 AND l.expires_at <= now())
           -- Jobs still leased in place (from before 0008) count too.
           OR EXISTS (SELECT 1 FROM pgqrs.jobs j WHERE j.queue_id = $1 AND j.lease_expires_at <= now())
    INTO settled, keyed, queue_paused, queue_cap, expired
    FROM (SELECT) one LEFT JOIN pgqrs.queues q ON q.id = $1;
    IF cardinality(settled) < cardinality($6) THEN
        -- Part of a batch, or jobs whose lease was lost.
        WITH unsettled AS MATERIALIZED (
            SELECT p.id, p.token FROM unnest($6, $7) AS p(id, token) WHERE p.id <> ALL (settled)
        )
        SELECT coalesce(array_agg(s.id), '{}') INTO rest
        FROM pgqrs.lease_settle(ARRAY(SELECT id FROM unsettled), ARRAY(SELECT token FROM unsettled)) s;
        keyed := keyed OR cardinality(rest) > 0;
        settled := settled || rest;
    END IF;
    IF $8 <> 'completed' AND cardinality(settled) > 0 THEN
        UPDATE pgqrs.archive a SET outcome = $8 WHERE a.id = ANY (settled);
    END IF;
    IF keyed THEN
        DELETE FROM pgqrs.job_keys k WHERE k.job_id = ANY (settled);
    END IF;

    -- `paused` is never NULL in a queue's row: the queue is gone.
    IF queue_paused IS NULL THEN
        RETURN;
    END IF;
    IF expired THEN
        PERFORM pgqrs.lease_rescue($1);
    END IF;
    IF queue_paused OR (queue_cap IS NOT NULL AND NOT $5) THEN
        claim_budget := 0;
    ELSIF queue_cap IS NULL THEN
        claim_budget := $2;
    ELSE
        SELECT least($2, greatest(0, queue_cap - coalesce(sum(cardinality(l.ids)), 0)))
        INTO claim_budget
        FROM pgqrs.leases l WHERE l.queue_id = $1 AND l.expires_at > now();
    END IF;

    -- The first row: the queue's controls and the ids archived, no job.
    paused := queue_paused;
    global_concurrency := queue_cap;
    archived := settled;
    RETURN NEXT;
    IF claim_budget <= 0 THEN
        RETURN;
    END IF;

    claim_expires := now() + make_interval(secs => $3);
    RETURN QUERY
    WITH lease AS MATERIALIZED (
        -- Drawn only once a job is taken: an empty poll writes nothing (every 32nd draw
        -- writes the sequence to the WAL, which the commit would then wait for).
        SELECT nextval('pgqrs.lease_tokens') AS token
    ),
    ready AS (
        SELECT j.ctid
        FROM pgqrs.jobs j
        WHERE j.queue_id = $1
          AND j.lease_token IS NULL
          AND j.run_at <= now()
        ORDER BY j.priority DESC, j.run_at, j.id
        -- A constant for the planner (`MAX_CLAIM_BATCH`, see 0007); the budget applies in
        -- `picked`, which reads this lazily, so only the rows it takes are locked.
        LIMIT 1000
        FOR UPDATE SKIP LOCKED
    ),
    picked AS (
        SELECT r.ctid FROM ready r LIMIT claim_budget
    ),
    taken AS (
        -- By the row's address: locked above, the row stays where it is until the end of
        -- the transaction, and is fetched without a walk down `jobs_pkey`.
        DELETE FROM pgqrs.jobs j WHERE j.ctid = ANY (ARRAY(SELECT ctid FROM picked))
        RETURNING j.id, j.queue_id, j.payload, j.priority, j.attempts, j.enqueued_at, j.run_at,
                  j.last_error
    ),
    recorded AS (
        INSERT INTO pgqrs.leases (token, queue_id, worker_id, expires_at, ids)
        SELECT (SELECT token FROM lease), $1, $4, claim_expires, array_agg(t.id)
        FROM taken t HAVING count(*) > 0
    )
    INSERT INTO pgqrs.archive AS a (id, queue_id, payload, priority, attempts, enqueued_at,
                                    outcome, lease_token, run_at, last_error)
    SELECT t.id, t.queue_id, t.payload, t.priority, t.attempts + 1, t.enqueued_at,
           'completed', (SELECT token FROM lease), t.run_at, t.last_error
    FROM taken t
    RETURNING queue_paused, queue_cap, NULL::bigint[], a.id, a.payload::text, a.priority,
              a.attempts, a.enqueued_at, a.lease_token, claim_expires;
END
$$;
