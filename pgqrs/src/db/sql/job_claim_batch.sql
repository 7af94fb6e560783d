-- The claim (the function `pgqrs.job_claim_batch`, migrations/0009_lean_claim.sql):
-- archives the held jobs ($6 ids, $7 their lease tokens) with outcome $8, then claims up
-- to $2 jobs of queue $1 for $3 seconds for the worker $4. Returns no row when the queue
-- is gone; else a first row with the queue's controls and the archived ids and no job,
-- then one row per job claimed (with the controls too).
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
