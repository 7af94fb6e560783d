-- The baseline's enqueue of one job (pgqrs-bench's `insert_one`): INSERT .. RETURNING.
INSERT INTO raw.jobs (payload) VALUES (:payload::jsonb) RETURNING id;
