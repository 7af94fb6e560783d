-- pgqrs's enqueue of one job, as `job_insert_one` (pgqrs/src/db/job.rs) sends it, with its
-- wake-up (`NOTIFY`), as a lone producer sends one with every enqueue.
INSERT INTO pgqrs.jobs (queue_id, payload, priority, run_at)
SELECT :q, (:payload)::text::jsonb, 0, coalesce(NULL, now()) + make_interval(secs => 0)
WHERE EXISTS (SELECT 1 FROM pgqrs.queues q WHERE q.id = :q)
  AND (NOT true OR pg_notify('pgqrs_jobs', (:q)::text) IS NOT NULL)
RETURNING id, run_at, false;
