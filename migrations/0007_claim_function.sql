-- The claim, as a function: its settings apply to the plan of its statement, which
-- PL/pgSQL caches per connection as a prepared statement would be. A session SET cannot do
-- this (transaction-mode poolers share sessions).
--
-- `plan_cache_mode = force_generic_plan`: the statement is planned once per connection
-- (again after an ANALYZE or VACUUM of a table it reads), never per call. Postgres
-- otherwise plans anew on every call while the generic plan costs more than the average
-- of the first custom plans; after the table's statistics moved (50,000 jobs leased and
-- analyzed, with the first plans made at 20 jobs) 100 claims out of 100 were planned anew,
-- 0.5 ms each, and a connection needs hundreds of such claims to average its way back.
--
-- `enable_seqscan = off`: the one plan never scans `pgqrs.jobs` whole, whatever the
-- table's size when it was made. Planned while the table was one page, it updated and
-- deleted the picked rows by sequential scan (`id = ANY(...)` over one page is cheapest
-- so) and went on scanning the whole table once it had grown: a claim of 1 read 5,572
-- pages (35 ms) at 200k jobs until autovacuum came by, up to a minute later.
--
-- Archives the held jobs ($6 ids, $7 their lease tokens) with outcome $8, then claims up
-- to $2 jobs of queue $1 for $3 seconds under one fresh fencing token, for the worker $4
-- (NULL for a plain consumer): the ack of one batch rides on the claim of the next.
-- Always returns at least one row carrying the queue's controls (and, on the first row,
-- the ids archived); the job columns are NULL when nothing was claimed.
--
-- Jobs whose lease expired come first (their holder vanished; they are older than any
-- ready job); those that used their last allowed delivery go to the dead letters instead.
-- A job is leased exactly when it has an expiry (`jobs_lease_whole`), which is what the
-- leased index is partial on. Both candidate sets are read from small partial indexes in
-- claim order and stop after the batch, so the cost does not depend on how deep the queue
-- is. Rows are then reached by primary key through `id = ANY(ARRAY(...))`, never by a
-- join: a join lets a generic plan pick a hash join over a sequential scan of the whole
-- table.
--
-- A paused queue yields nothing. A queue with a global concurrency cap yields only what the
-- cap leaves, and only when the caller holds the queue's claim lock ($5): the count of
-- leased jobs is then current for this statement's snapshot.
CREATE FUNCTION pgqrs.job_claim_batch(integer, bigint, float8, bigint, boolean, bigint[], bigint[], text)
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
BEGIN
    RETURN QUERY
    WITH args AS MATERIALIZED (
        -- The parameters, out of the planner's sight: the one generic plan is made
        -- without them.
        SELECT $1::integer AS queue_id, $2::bigint AS batch, $3::float8 AS lease_secs,
               $4::bigint AS worker_id, $5::boolean AS holds_claim_lock,
               $6::bigint[] AS ack_ids, $7::bigint[] AS ack_tokens, $8::text AS outcome
    ),
    done AS (
        DELETE FROM pgqrs.jobs j
        WHERE j.id = ANY((SELECT ack_ids FROM args)::bigint[]) AND j.lease_token = ANY((SELECT ack_tokens FROM args)::bigint[])
        RETURNING j.id, j.queue_id, j.payload, j.priority, j.attempts, j.enqueued_at
    ),
    archived AS (
        INSERT INTO pgqrs.archive (id, queue_id, payload, priority, attempts, enqueued_at, outcome)
        SELECT id, queue_id, payload, priority, attempts, enqueued_at, (SELECT outcome FROM args) FROM done
        RETURNING id
    ),
    queue AS (
        SELECT max_attempts, paused, global_concurrency FROM pgqrs.queues WHERE id = (SELECT queue_id FROM args)
    ),
    budget AS (
        SELECT CASE
            WHEN q.paused THEN 0
            WHEN q.global_concurrency IS NULL THEN (SELECT batch FROM args)
            WHEN NOT (SELECT holds_claim_lock FROM args) THEN 0
            ELSE least((SELECT batch FROM args), greatest(0, q.global_concurrency - (
                SELECT count(*) FROM pgqrs.jobs l
                WHERE l.queue_id = (SELECT queue_id FROM args)
                  AND l.lease_expires_at > now())))
        END AS n
        FROM queue q
    ),
    expired AS (
        SELECT j.id, j.attempts
        FROM pgqrs.jobs j
        WHERE j.queue_id = (SELECT queue_id FROM args)
          AND j.lease_expires_at <= now()
        ORDER BY j.lease_expires_at
        LIMIT (SELECT n FROM budget)
        FOR UPDATE SKIP LOCKED
    ),
    exhausted AS (
        DELETE FROM pgqrs.jobs j
        WHERE j.id = ANY (ARRAY(SELECT e.id FROM expired e, queue q WHERE e.attempts >= q.max_attempts))
        RETURNING j.id, j.queue_id, j.payload, j.priority, j.attempts, j.enqueued_at
    ),
    buried AS (
        INSERT INTO pgqrs.dead_letters (id, queue_id, payload, priority, attempts, enqueued_at, reason)
        SELECT id, queue_id, payload, priority, attempts, enqueued_at,
               'lease expired on delivery ' || attempts || ', the last one max_attempts allows'
        FROM exhausted
    ),
    ready AS (
        SELECT j.id
        FROM pgqrs.jobs j
        WHERE j.queue_id = (SELECT queue_id FROM args)
          AND j.lease_token IS NULL
          AND j.run_at <= now()
        ORDER BY j.priority DESC, j.run_at, j.id
        -- A constant for the planner (the largest batch a claim takes, `MAX_CLAIM_BATCH`); the
        -- budget applies in `picked`, which reads this lazily, so only the rows it takes are
        -- locked. Under a LIMIT it cannot read, the planner prices a tenth of the queue, so the
        -- plan's cost grew with the backlog; a connection whose plan cache had averaged its
        -- first plans on a short queue then re-planned every claim (0.5 ms each) for thousands
        -- of claims once the queue was a million deep.
        LIMIT 1000
        FOR UPDATE SKIP LOCKED
    ),
    picked AS (
        (SELECT e.id FROM expired e, queue q WHERE e.attempts < q.max_attempts)
        UNION ALL
        (SELECT r.id FROM ready r)
        LIMIT (SELECT n FROM budget)
    ),
    claimed AS (
        UPDATE pgqrs.jobs j
        SET lease_token = (SELECT nextval('pgqrs.lease_tokens')),
            lease_expires_at = now() + make_interval(secs => (SELECT lease_secs FROM args)),
            attempts = j.attempts + 1,
            worker_id = (SELECT worker_id FROM args)
        WHERE j.id = ANY (ARRAY(SELECT id FROM picked))
        RETURNING j.id, j.payload, j.priority, j.attempts, j.enqueued_at, j.lease_token,
                  j.lease_expires_at
    )
    SELECT q.paused,
           q.global_concurrency,
           -- Only on the first row: repeated on each, a batch's ids would cost more to send
           -- than the batch itself.
           CASE WHEN row_number() OVER () = 1 THEN ARRAY(SELECT id FROM archived) END AS archived,
           c.id AS id,
           c.payload::text AS payload,
           c.priority AS priority,
           c.attempts AS attempts,
           c.enqueued_at AS enqueued_at,
           c.lease_token AS lease_token,
           c.lease_expires_at AS lease_expires_at
    FROM queue q
    LEFT JOIN claimed c ON true;
END
$$;
