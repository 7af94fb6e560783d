-- Claims up to $2 jobs of queue $1 for $3 seconds under one fresh fencing token.
-- Jobs whose lease expired come first (their holder vanished; they are older than any
-- ready job); those that used their last allowed delivery go to the dead letters instead.
-- Both candidate sets are read from small partial indexes in claim order and stop after
-- $2 rows, so the cost does not depend on how deep the queue is.
WITH queue AS (
    SELECT max_attempts FROM pgqrs.queues WHERE id = $1::integer
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
    LIMIT $2::bigint
    FOR UPDATE SKIP LOCKED
),
picked AS (
    (SELECT e.id FROM expired e, queue q WHERE e.attempts < q.max_attempts)
    UNION ALL
    (SELECT r.id FROM ready r)
    LIMIT $2::bigint
)
UPDATE pgqrs.jobs j
SET lease_token = (SELECT nextval('pgqrs.lease_tokens')),
    lease_expires_at = now() + make_interval(secs => $3::float8),
    attempts = j.attempts + 1
FROM picked p
WHERE j.id = p.id
RETURNING j.id,
          j.payload::text AS "payload!",
          j.priority,
          j.attempts,
          j.enqueued_at,
          j.lease_token AS "lease_token!",
          j.lease_expires_at AS "lease_expires_at!"
