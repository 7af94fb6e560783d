-- The function's first statement on its own, with nothing to ack: the queue's controls and
-- whether it has expired leases.
WITH dropped AS (
    DELETE FROM pgqrs.leases l WHERE l.token = ANY ('{}'::bigint[]) AND l.ids <@ '{}'::bigint[]
    RETURNING l.ids, l.queue_id)
SELECT coalesce((SELECT array_agg(x) FROM dropped d, unnest(d.ids) x), '{}'),
       EXISTS (SELECT 1 FROM pgqrs.job_keys k WHERE k.queue_id IN (SELECT d.queue_id FROM dropped d)),
       q.paused, q.global_concurrency,
       EXISTS (SELECT 1 FROM pgqrs.leases l WHERE l.queue_id = :q AND l.expires_at <= now())
       OR EXISTS (SELECT 1 FROM pgqrs.jobs j WHERE j.queue_id = :q AND j.lease_expires_at <= now())
FROM (SELECT) one LEFT JOIN pgqrs.queues q ON q.id = :q;
