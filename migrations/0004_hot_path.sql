-- Hot-path tuning, measured with pgqrs-bench (see pgqrs-bench/RESULTS.md).

-- The foreign key from jobs to queues cost a trigger and a row lock on the queue per
-- inserted job (half of an enqueue's server time). Enqueues now check that the queue exists
-- in their own statement, and deleting a queue locks the jobs table against concurrent
-- writers while it removes the queue and its jobs.
ALTER TABLE pgqrs.jobs DROP CONSTRAINT jobs_queue_id_fkey;

-- History is appended in time order: a BRIN index serves retention by age at a fraction of
-- a b-tree's cost per archived job.
DROP INDEX pgqrs.archive_queue_archived_at;
CREATE INDEX archive_archived_at ON pgqrs.archive USING brin (archived_at);

-- Recording a step checked its run with a trigger and locked the run's row each time;
-- steps are only ever written for a run held through its lease, and runs are never deleted.
ALTER TABLE pgqrs.steps DROP CONSTRAINT steps_run_id_fkey;

-- A run's status changes a few times in its life; with no index on it (nor on any other
-- column those updates touch) and room left on each page, they are HOT updates that write
-- no index entries.
DROP INDEX pgqrs.runs_active;
ALTER TABLE pgqrs.runs SET (fillfactor = 80);
