-- pgqrs's tables, still without a lease: the runnable index, the delete by address, and
-- pgqrs's archive row (queue, priority, attempts, times, outcome, lease token, run time).
WITH ready AS (
    SELECT j.ctid FROM pgqrs.jobs j
    WHERE j.queue_id = :q AND j.lease_token IS NULL AND j.run_at <= now()
    ORDER BY j.priority DESC, j.run_at, j.id LIMIT 100 FOR UPDATE SKIP LOCKED),
taken AS (
    DELETE FROM pgqrs.jobs j WHERE j.ctid = ANY (ARRAY(SELECT ctid FROM ready))
    RETURNING j.id, j.queue_id, j.payload, j.priority, j.attempts, j.enqueued_at, j.run_at, j.last_error)
INSERT INTO pgqrs.archive AS a (id, queue_id, payload, priority, attempts, enqueued_at,
                                outcome, lease_token, run_at, last_error)
SELECT t.id, t.queue_id, t.payload, t.priority, t.attempts + 1, t.enqueued_at,
       'completed', 0, t.run_at, t.last_error
FROM taken t
RETURNING a.id, a.payload::text, a.priority, a.attempts, a.enqueued_at;
