-- pgqrs itself: the call the library makes, acking the previous batch (the 100 jobs up to
-- the last id it returned, under its lease token) and claiming 100 for 30 s.
SELECT * FROM pgqrs.job_claim_batch(:q, 100, 30, NULL, true,
                                    ARRAY(SELECT generate_series(:id - 99, :id)::bigint),
                                    array_fill(:lease_token::bigint, ARRAY[100]), 'completed')
\aset
