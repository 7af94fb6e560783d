-- The single-statement limit (pgqrs-bench's `take_and_archive`): no lease at all.
WITH done AS (
    DELETE FROM raw.jobs WHERE id IN (SELECT id FROM raw.jobs WHERE vt <= now()
                                      ORDER BY vt, id LIMIT 100 FOR UPDATE SKIP LOCKED)
    RETURNING id, payload)
INSERT INTO raw.archive (id, payload) SELECT id, payload FROM done RETURNING id, payload;
