-- Claims up to $2 jobs of queue $1 for $3 seconds under one fresh fencing token, for the
-- worker $4 (NULL for a plain consumer). Always returns at least one row carrying the
-- queue's controls; the job columns are NULL when nothing was claimed.
--
-- Jobs whose lease expired come first (their holder vanished; they are older than any
-- ready job); those that used their last allowed delivery go to the dead letters instead.
-- Both candidate sets are read from small partial indexes in claim order and stop after
-- the batch, so the cost does not depend on how deep the queue is.
--
-- A paused queue yields nothing. A queue with a global concurrency cap yields only what the
-- cap leaves, and only when the caller holds the queue's claim lock ($5): the count of
-- leased jobs is then current for this statement's snapshot.
WITH queue AS (
    SELECT max_attempts, paused, global_concurrency FROM pgqrs.queues WHERE id = $1::integer
),
budget AS (
    SELECT CASE
        WHEN q.paused THEN 0
        WHEN q.global_concurrency IS NULL THEN $2::bigint
        WHEN NOT $5::boolean THEN 0
        ELSE least($2::bigint, greatest(0, q.global_concurrency - (
            SELECT count(*) FROM pgqrs.jobs l
            WHERE l.queue_id = $1::integer
              AND l.lease_token IS NOT NULL
              AND l.lease_expires_at > now())))
    END AS n
    FROM queue q
),
expired AS (
    SELECT j.id, j.attempts
    FROM pgqrs.jobs j
    WHERE j.queue_id = $1::integer
      AND j.lease_token IS NOT NULL
      AND j.lease_expires_at <= now()
    ORDER BY j.lease_expires_at
    LIMIT $2::bigint
    FOR UPDATE SKIP LOCKED
),
exhausted AS (
    DELETE FROM pgqrs.jobs j
    USING expired e, queue q
    WHERE j.id = e.id AND e.attempts >= q.max_attempts
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
    WHERE j.queue_id = $1::integer
      AND j.lease_token IS NULL
      AND j.run_at <= now()
    ORDER BY j.priority DESC, j.run_at, j.id
    LIMIT (SELECT n FROM budget)
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
        lease_expires_at = now() + make_interval(secs => $3::float8),
        attempts = j.attempts + 1,
        worker_id = $4::bigint
    FROM picked p
    WHERE j.id = p.id
    RETURNING j.id, j.payload, j.priority, j.attempts, j.enqueued_at, j.lease_token,
              j.lease_expires_at
)
SELECT q.paused,
       q.global_concurrency,
       c.id AS "id?",
       c.payload::text AS "payload?",
       c.priority AS "priority?",
       c.attempts AS "attempts?",
       c.enqueued_at AS "enqueued_at?",
       c.lease_token AS "lease_token?",
       c.lease_expires_at AS "lease_expires_at?"
FROM queue q
LEFT JOIN claimed c ON true
