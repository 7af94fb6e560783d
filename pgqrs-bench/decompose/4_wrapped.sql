-- Step 3 inside a PL/pgSQL function (`lease_step`, which run.sh makes from 3_lease.sql).
SELECT * FROM public.lease_step(:q, ARRAY(SELECT generate_series(:id - 99, :id)::bigint),
                                array_fill(:lease_token::bigint, ARRAY[100]))
\aset
