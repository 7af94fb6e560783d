-- The function asked for no job: its first statement, its settings, its control row.
SELECT * FROM pgqrs.job_claim_batch(:q, 0, 30, NULL, true, '{}', '{}', 'completed');
