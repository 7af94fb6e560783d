-- Step 2 plus pgqrs's batch lease: a token drawn from the sequence, one lease row naming the
-- batch's jobs, and the ack of the previous batch (its lease row deleted, as the function's
-- common path does it), all in one statement. (A data-modifying CTE runs whether or not it
-- is read.)
WITH acked AS (
    DELETE FROM pgqrs.leases l
    WHERE l.token = ANY (array_fill(:lease_token::bigint, ARRAY[100]))
      AND l.ids <@ ARRAY(SELECT generate_series(:id - 99, :id)::bigint)
    RETURNING l.ids),
lease AS MATERIALIZED (SELECT nextval('pgqrs.lease_tokens') AS token),
ready AS (
    SELECT j.ctid FROM pgqrs.jobs j
    WHERE j.queue_id = :q AND j.lease_token IS NULL AND j.run_at <= now()
    ORDER BY j.priority DESC, j.run_at, j.id LIMIT 100 FOR UPDATE SKIP LOCKED),
taken AS (
    DELETE FROM pgqrs.jobs j WHERE j.ctid = ANY (ARRAY(SELECT ctid FROM ready))
    RETURNING j.id, j.queue_id, j.payload, j.priority, j.attempts, j.enqueued_at, j.run_at, j.last_error),
recorded AS (
    INSERT INTO pgqrs.leases (token, queue_id, worker_id, expires_at, ids)
    SELECT (SELECT token FROM lease), :q, NULL, now() + interval '30 s', array_agg(t.id)
    FROM taken t HAVING count(*) > 0)
INSERT INTO pgqrs.archive AS a (id, queue_id, payload, priority, attempts, enqueued_at,
                                outcome, lease_token, run_at, last_error)
SELECT t.id, t.queue_id, t.payload, t.priority, t.attempts + 1, t.enqueued_at,
       'completed', (SELECT token FROM lease), t.run_at, t.last_error
FROM taken t
RETURNING a.id, a.payload::text, a.priority, a.attempts, a.enqueued_at, a.lease_token
\aset
