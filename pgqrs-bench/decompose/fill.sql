-- :n jobs of about 110 bytes of JSON (pgqrs-bench's payload) in each side's empty tables,
-- the same payloads on both sides, then a checkpoint: every step starts from the same state.
TRUNCATE pgqrs.jobs, pgqrs.archive, pgqrs.leases, raw.jobs, raw.archive;
INSERT INTO pgqrs.jobs (queue_id, payload, run_at)
SELECT :q, jsonb_build_object('task', 'send_email', 'to', format('user-%s@example.com', lpad(g::text, 6, '0')),
                             'n', g, 'pad', '0123456789abcdef0123456789abcdef0123456789'),
       now() - interval '1 hour'
FROM generate_series(1, :n) g;
INSERT INTO raw.jobs (payload, vt) SELECT payload, run_at FROM pgqrs.jobs ORDER BY id;
VACUUM ANALYZE pgqrs.jobs;
VACUUM ANALYZE raw.jobs;
CHECKPOINT;
