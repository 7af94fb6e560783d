-- Worker runtime: queue controls, unique jobs, the worker registry, periodic schedules.

-- Workers stop claiming from a paused queue; `global_concurrency` caps the jobs of the
-- queue leased at once across all workers (NULL: no cap).
ALTER TABLE pgqrs.queues
    ADD COLUMN paused boolean NOT NULL DEFAULT false,
    ADD COLUMN global_concurrency integer
        CONSTRAINT queues_global_concurrency_positive CHECK (global_concurrency >= 1);

-- `worker_id`: the registered worker holding the lease (NULL for a plain consumer).
-- `unique_key`: at most one waiting or leased job per key and queue.
ALTER TABLE pgqrs.jobs
    ADD COLUMN worker_id bigint,
    ADD COLUMN unique_key text;

CREATE UNIQUE INDEX jobs_unique_key ON pgqrs.jobs (queue_id, unique_key)
    WHERE unique_key IS NOT NULL;

-- One row per running worker process; a crashed one is reaped once its heartbeat is stale.
CREATE TABLE pgqrs.workers (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL,
    pid          integer NOT NULL,
    queues       text[] NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX workers_heartbeat_at ON pgqrs.workers (heartbeat_at);

-- The last tick of each periodic schedule that was enqueued: one enqueue per tick, however
-- many workers run the schedule.
CREATE TABLE pgqrs.periodic_ticks (
    name      text PRIMARY KEY,
    last_tick timestamptz NOT NULL
);
