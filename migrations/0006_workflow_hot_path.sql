-- Workflow hot path, measured with pgbench on the statements of a 3-step run
-- (see pgqrs-bench/RESULTS.md, scenario F).

-- No statement reads runs by (workflow, created_at): listing filters by workflow and orders
-- by id. The index cost a b-tree insert on every run created.
DROP INDEX pgqrs.runs_workflow_created;
