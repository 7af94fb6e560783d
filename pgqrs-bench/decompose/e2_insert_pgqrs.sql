-- The same bare insert into `pgqrs.jobs` (pgqrs-bench's `insert_one_into_pgqrs`): the
-- table's share of an enqueue.
INSERT INTO pgqrs.jobs (queue_id, payload) VALUES (:q, :payload::jsonb) RETURNING id;
