-- The baseline's tables (as pgqrs-bench's `raw` module makes them) and one pgqrs queue.
CREATE SCHEMA raw;
CREATE TABLE raw.jobs (id bigserial PRIMARY KEY, payload jsonb NOT NULL,
                       vt timestamptz NOT NULL DEFAULT now(), attempts integer NOT NULL DEFAULT 0);
CREATE INDEX raw_jobs_vt ON raw.jobs (vt, id);
CREATE TABLE raw.archive (id bigint PRIMARY KEY, payload jsonb NOT NULL,
                          archived_at timestamptz NOT NULL DEFAULT now());
INSERT INTO pgqrs.queues (name) VALUES ('decompose');

