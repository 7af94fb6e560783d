-- Leased jobs by expiry, keyed on the expiry itself.
--
-- The index was partial on `lease_token IS NOT NULL`. Every statement that names a job by
-- id and lease token (an ack, a heartbeat, a workflow step's lease fence) implies that
-- predicate, so the planner could answer it by reading this whole index and filtering on
-- id, with no condition on the index's columns. It chose to whenever the index was small
-- when a connection planned the statement (as it is after a vacuum), and kept that plan:
-- each ack then read every leased job of every queue, plus the entries vacuum had not yet
-- removed. `lease_expires_at IS NOT NULL` holds for exactly the same rows (the
-- `jobs_lease_whole` check), but only statements that ask about expiry imply it, so
-- lookups by id go through the primary key.
DROP INDEX pgqrs.jobs_leased;
CREATE INDEX jobs_leased ON pgqrs.jobs (queue_id, lease_expires_at)
    WHERE lease_expires_at IS NOT NULL;
