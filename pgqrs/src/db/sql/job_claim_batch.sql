-- The claim (the function `pgqrs.job_claim_batch`, migrations/0007_claim_function.sql):
-- archives the held jobs ($6 ids, $7 their lease tokens) with outcome $8, then claims up
-- to $2 jobs of queue $1 for $3 seconds for the worker $4. Always returns at least one
-- row carrying the queue's controls; the job columns are NULL when nothing was claimed.
SELECT paused AS "paused!",
       global_concurrency,
       archived AS "archived?",
       id AS "id?",
       payload AS "payload?",
       priority AS "priority?",
       attempts AS "attempts?",
       enqueued_at AS "enqueued_at?",
       lease_token AS "lease_token?",
       lease_expires_at AS "lease_expires_at?"
FROM pgqrs.job_claim_batch($1, $2, $3, $4, $5, $6, $7, $8)
