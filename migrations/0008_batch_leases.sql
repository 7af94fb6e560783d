-- One lease per claimed batch instead of one per job (see pgqrs-bench/RESULTS.md, scenario L).
--
-- A claim used to mark each job it took (a new version of every row, and index entries in
-- both partial indexes), and the ack then deleted the rows and wrote them to the archive:
-- two writes per job. The claim now moves its jobs straight into the archive, where they
-- will stay when they complete, and records one row in `pgqrs.leases` for the whole batch:
-- its fencing token, expiry, holder and the ids still in flight. Completing a batch drops
-- that one row. A job leaves a lease in one of these ways, each removing its id from the
-- lease (and the lease once it is empty):
--
-- * completed: its archive row stays, with outcome `completed` (or the ack's outcome);
-- * failed, released, expired: its archive row moves back to `pgqrs.jobs`;
-- * dead-lettered or deleted: its archive row moves to the dead letters or goes.
--
-- A job is in flight exactly when its archive row's `lease_token` names a lease whose `ids`
-- hold it; every reader of the archive that cares about history checks that. An archived
-- job's `archived_at` is when its last delivery began.

CREATE TABLE pgqrs.leases (
    token      bigint PRIMARY KEY,
    queue_id   integer NOT NULL,
    worker_id  bigint,
    expires_at timestamptz NOT NULL,
    ids        bigint[] NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.05);

-- Expired leases of a queue, for the claim to hand their jobs back; small (one row per
-- batch in flight).
CREATE INDEX leases_queue_expires_at ON pgqrs.leases (queue_id, expires_at);

-- What a job in flight needs to go back to its queue.
ALTER TABLE pgqrs.archive
    ADD COLUMN lease_token bigint,
    ADD COLUMN run_at timestamptz,
    ADD COLUMN last_error text;

-- The archive without the jobs in flight: every job that completed, was cancelled or
-- finished its run, with its outcome. For reading; pgqrs itself never reads it.
CREATE VIEW pgqrs.history AS
SELECT a.id, a.queue_id, a.payload, a.priority, a.attempts, a.enqueued_at, a.archived_at, a.outcome
FROM pgqrs.archive a
WHERE NOT EXISTS (
    SELECT 1 FROM pgqrs.leases l WHERE l.token = a.lease_token AND a.id = ANY (l.ids)
);

-- A unique key is held from the enqueue until the job completes, is dead-lettered or is
-- deleted, wherever the job is meanwhile (waiting, or in flight in the archive): the key
-- is the row here, and its primary key is what makes a second holder impossible.
CREATE TABLE pgqrs.job_keys (
    queue_id   integer NOT NULL,
    unique_key text NOT NULL,
    job_id     bigint NOT NULL,
    PRIMARY KEY (queue_id, unique_key)
);

CREATE INDEX job_keys_job_id ON pgqrs.job_keys (job_id);

INSERT INTO pgqrs.job_keys (queue_id, unique_key, job_id)
SELECT queue_id, unique_key, id FROM pgqrs.jobs WHERE unique_key IS NOT NULL;

-- `pgqrs.jobs` now holds waiting jobs only. Its lease columns stay (migrations are
-- additive), NULL in every row written from now on, and so does the partial index
-- `jobs_runnable` (every waiting job is in it). A job leased in place when this migration
-- ran keeps its lease until it expires; the claim then hands it back (`pgqrs.lease_rescue`).
-- `jobs.unique_key` and its index are no longer written: keys live in `pgqrs.job_keys`.

-- Settles jobs in flight: removes each (id, token) pair from its lease, drops leases left
-- empty, and returns the pairs that were held (the others had lost their lease). With
-- `expired_only`, only leases that have expired are touched. The caller moves the jobs'
-- archive rows where they go.
CREATE FUNCTION pgqrs.lease_settle(bigint[], bigint[], boolean DEFAULT false)
RETURNS TABLE (id bigint, token bigint)
LANGUAGE plpgsql
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH pairs AS MATERIALIZED (
        SELECT DISTINCT p.id, p.token FROM unnest($1::bigint[], $2::bigint[]) AS p(id, token)
    ),
    held AS (
        SELECT l.token, l.ids FROM pgqrs.leases l
        WHERE l.token = ANY (ARRAY(SELECT DISTINCT p.token FROM pairs p))
          AND (NOT $3 OR l.expires_at <= now())
        ORDER BY l.token
        FOR UPDATE
    ),
    split AS MATERIALIZED (
        SELECT h.token,
               ARRAY(SELECT x FROM unnest(h.ids) x
                     WHERE EXISTS (SELECT 1 FROM pairs p WHERE p.token = h.token AND p.id = x)) AS done,
               ARRAY(SELECT x FROM unnest(h.ids) x
                     WHERE NOT EXISTS (SELECT 1 FROM pairs p WHERE p.token = h.token AND p.id = x)) AS rest
        FROM held h
    ),
    dropped AS (
        DELETE FROM pgqrs.leases l USING split s
        WHERE l.token = s.token AND cardinality(s.rest) = 0
    ),
    trimmed AS (
        UPDATE pgqrs.leases l SET ids = s.rest FROM split s
        WHERE l.token = s.token AND cardinality(s.rest) > 0 AND cardinality(s.done) > 0
    )
    SELECT d.id, s.token FROM split s CROSS JOIN LATERAL unnest(s.done) AS d(id);
END
$$;

-- Hands the jobs of up to 100 expired leases of queue $1 back to it (with the run_at they
-- had, so they come first), or to the dead letters when they used their last delivery;
-- likewise jobs still leased in place (from before this migration) whose lease expired.
-- Returns how many jobs went back.
CREATE FUNCTION pgqrs.lease_rescue(integer)
RETURNS bigint
LANGUAGE plpgsql
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    returned_count bigint;
BEGIN
    WITH expired AS (
        SELECT l.token, l.ids FROM pgqrs.leases l
        WHERE l.queue_id = $1 AND l.expires_at <= now()
        ORDER BY l.expires_at
        LIMIT 100
        FOR UPDATE SKIP LOCKED
    ),
    gone AS (
        DELETE FROM pgqrs.leases l USING expired e WHERE l.token = e.token
    ),
    rescued AS (
        DELETE FROM pgqrs.archive a USING expired e
        WHERE a.id = ANY (e.ids) AND a.lease_token = e.token
        RETURNING a.id, a.queue_id, a.payload, a.priority, a.attempts, a.enqueued_at, a.run_at,
                  a.last_error, a.attempts >= (SELECT q.max_attempts FROM pgqrs.queues q
                                               WHERE q.id = a.queue_id) AS exhausted
    ),
    returned AS (
        INSERT INTO pgqrs.jobs (id, queue_id, payload, priority, run_at, attempts, enqueued_at, last_error)
        SELECT r.id, r.queue_id, r.payload, r.priority, coalesce(r.run_at, now()), r.attempts,
               r.enqueued_at, r.last_error
        FROM rescued r WHERE r.exhausted IS NOT TRUE
        RETURNING 1
    ),
    buried AS (
        INSERT INTO pgqrs.dead_letters (id, queue_id, payload, priority, attempts, enqueued_at, reason)
        SELECT r.id, r.queue_id, r.payload, r.priority, r.attempts, r.enqueued_at,
               'lease expired on delivery ' || r.attempts || ', the last one max_attempts allows'
        FROM rescued r WHERE r.exhausted
        RETURNING id
    ),
    unkeyed AS (
        DELETE FROM pgqrs.job_keys k WHERE k.job_id = ANY (ARRAY(SELECT id FROM buried))
    )
    SELECT count(*) INTO returned_count FROM returned;

    WITH expired AS (
        SELECT j.id, j.attempts >= q.max_attempts AS exhausted
        FROM pgqrs.jobs j JOIN pgqrs.queues q ON q.id = j.queue_id
        WHERE j.queue_id = $1 AND j.lease_expires_at <= now()
        FOR UPDATE OF j SKIP LOCKED
    ),
    released AS (
        UPDATE pgqrs.jobs j SET lease_token = NULL, lease_expires_at = NULL, worker_id = NULL
        FROM expired e WHERE j.id = e.id AND NOT e.exhausted
        RETURNING 1
    ),
    gone AS (
        DELETE FROM pgqrs.jobs j USING expired e WHERE j.id = e.id AND e.exhausted
        RETURNING j.id, j.queue_id, j.payload, j.priority, j.attempts, j.enqueued_at
    ),
    buried AS (
        INSERT INTO pgqrs.dead_letters (id, queue_id, payload, priority, attempts, enqueued_at, reason)
        SELECT g.id, g.queue_id, g.payload, g.priority, g.attempts, g.enqueued_at,
               'lease expired on delivery ' || g.attempts || ', the last one max_attempts allows'
        FROM gone g
        RETURNING id
    ),
    unkeyed AS (
        DELETE FROM pgqrs.job_keys k WHERE k.job_id = ANY (ARRAY(SELECT id FROM buried))
    )
    SELECT returned_count + count(*) INTO returned_count FROM released;
    RETURN returned_count;
END
$$;

-- The claim, as before a function (0007 says why): archives the held jobs ($6 ids, $7 their
-- lease tokens) with outcome $8, hands back the jobs of expired leases, then claims up to
-- $2 jobs of queue $1 for $3 seconds under one fresh lease, for the worker $4 (NULL for a
-- plain consumer). Always returns at least one row carrying the queue's controls (and, on
-- the first row, the ids archived); the job columns are NULL when nothing was claimed.
--
-- A paused queue yields nothing. A queue with a global concurrency cap yields only what the
-- cap leaves, and only when the caller holds the queue's claim lock ($5).
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
    expired boolean;
BEGIN
    IF cardinality($6) > 0 THEN
        -- The common ack, in one statement: every job of the held leases completed. It
        -- also tells whether the queue has expired leases to hand back.
        WITH dropped AS (
            DELETE FROM pgqrs.leases l
            WHERE l.token = ANY ($7) AND l.ids <@ $6
            RETURNING l.ids
        ),
        done AS MATERIALIZED (
            SELECT x FROM dropped d, unnest(d.ids) x
        ),
        relabelled AS (
            UPDATE pgqrs.archive a SET outcome = $8
            WHERE $8 <> 'completed' AND a.id = ANY (ARRAY(SELECT x FROM done))
        ),
        unkeyed AS (
            DELETE FROM pgqrs.job_keys k WHERE k.job_id = ANY (ARRAY(SELECT x FROM done))
        )
        SELECT coalesce(array_agg(x), '{}'),
               EXISTS (SELECT 1 FROM pgqrs.leases l WHERE l.queue_id = $1 AND l.expires_at <= now())
               -- Jobs still leased in place (from before this migration) count too.
               OR EXISTS (SELECT 1 FROM pgqrs.jobs j WHERE j.queue_id = $1 AND j.lease_expires_at <= now())
        INTO settled, expired
        FROM done;
        IF cardinality(settled) < cardinality($6) THEN
            -- Part of a batch, or jobs whose lease was lost.
            WITH held AS MATERIALIZED (
                SELECT s.id FROM pgqrs.lease_settle(
                    ARRAY(SELECT p.id FROM unnest($6, $7) AS p(id, token) WHERE p.id <> ALL (settled)),
                    ARRAY(SELECT p.token FROM unnest($6, $7) AS p(id, token) WHERE p.id <> ALL (settled))) s
            ),
            relabelled AS (
                UPDATE pgqrs.archive a SET outcome = $8
                WHERE $8 <> 'completed' AND a.id = ANY (ARRAY(SELECT id FROM held))
            ),
            unkeyed AS (
                DELETE FROM pgqrs.job_keys k WHERE k.job_id = ANY (ARRAY(SELECT id FROM held))
            )
            SELECT coalesce(array_agg(id), '{}') INTO rest FROM held;
            settled := settled || rest;
        END IF;
    ELSE
        expired := EXISTS (SELECT 1 FROM pgqrs.leases l WHERE l.queue_id = $1 AND l.expires_at <= now())
                   OR EXISTS (SELECT 1 FROM pgqrs.jobs j WHERE j.queue_id = $1 AND j.lease_expires_at <= now());
    END IF;

    IF expired THEN
        PERFORM pgqrs.lease_rescue($1);
    END IF;

    RETURN QUERY
    WITH args AS MATERIALIZED (
        -- The parameters, out of the planner's sight: the one generic plan is made
        -- without them.
        SELECT $1::integer AS queue_id, $2::bigint AS batch, $3::float8 AS lease_secs,
               $4::bigint AS worker_id, $5::boolean AS holds_claim_lock
    ),
    queue AS (
        SELECT q.paused, q.global_concurrency FROM pgqrs.queues q WHERE q.id = (SELECT queue_id FROM args)
    ),
    budget AS (
        SELECT CASE
            WHEN q.paused THEN 0
            WHEN q.global_concurrency IS NULL THEN (SELECT batch FROM args)
            WHEN NOT (SELECT holds_claim_lock FROM args) THEN 0
            ELSE least((SELECT batch FROM args), greatest(0, q.global_concurrency - (
                SELECT coalesce(sum(cardinality(l.ids)), 0) FROM pgqrs.leases l
                WHERE l.queue_id = (SELECT queue_id FROM args) AND l.expires_at > now())))
        END AS n
        FROM queue q
    ),
    ready AS (
        SELECT j.id
        FROM pgqrs.jobs j
        WHERE j.queue_id = (SELECT queue_id FROM args)
          AND j.lease_token IS NULL
          AND j.run_at <= now()
        ORDER BY j.priority DESC, j.run_at, j.id
        -- A constant for the planner (`MAX_CLAIM_BATCH`, see 0007); the budget applies in
        -- `picked`, which reads this lazily, so only the rows it takes are locked.
        LIMIT 1000
        FOR UPDATE SKIP LOCKED
    ),
    picked AS (
        SELECT r.id FROM ready r LIMIT (SELECT n FROM budget)
    ),
    lease AS MATERIALIZED (
        SELECT nextval('pgqrs.lease_tokens') AS token,
               now() + make_interval(secs => (SELECT lease_secs FROM args)) AS expires_at
    ),
    taken AS (
        DELETE FROM pgqrs.jobs j WHERE j.id = ANY (ARRAY(SELECT id FROM picked))
        RETURNING j.id, j.queue_id, j.payload, j.priority, j.attempts, j.enqueued_at, j.run_at,
                  j.last_error
    ),
    moved AS (
        INSERT INTO pgqrs.archive AS a (id, queue_id, payload, priority, attempts, enqueued_at,
                                        outcome, lease_token, run_at, last_error)
        SELECT t.id, t.queue_id, t.payload, t.priority, t.attempts + 1, t.enqueued_at,
               'completed', (SELECT token FROM lease), t.run_at, t.last_error
        FROM taken t
        RETURNING a.id, a.payload, a.priority, a.attempts, a.enqueued_at
    ),
    recorded AS (
        INSERT INTO pgqrs.leases (token, queue_id, worker_id, expires_at, ids)
        SELECT (SELECT token FROM lease), (SELECT queue_id FROM args), (SELECT worker_id FROM args),
               (SELECT expires_at FROM lease), array_agg(m.id)
        FROM moved m HAVING count(*) > 0
    )
    SELECT q.paused,
           q.global_concurrency,
           -- Only on the first row: repeated on each, a batch's ids would cost more to send
           -- than the batch itself.
           CASE WHEN row_number() OVER () = 1 THEN settled END AS archived,
           m.id AS id,
           m.payload::text AS payload,
           m.priority AS priority,
           m.attempts AS attempts,
           m.enqueued_at AS enqueued_at,
           (SELECT token FROM lease) AS lease_token,
           (SELECT expires_at FROM lease) AS lease_expires_at
    FROM queue q
    LEFT JOIN moved m ON true;
END
$$;
