-- Durable workflows: runs, their completed steps, and signals sent to them.
-- A run is driven by a job of the queue `wf-<workflow>`: whoever holds that job's lease
-- executes the run, and every step completion is fenced by the job's lease token.

CREATE TYPE pgqrs.run_status AS ENUM
    ('pending', 'running', 'sleeping', 'waiting', 'succeeded', 'failed', 'cancelled');

CREATE TABLE pgqrs.runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow    text NOT NULL,
    version     text NOT NULL DEFAULT '',
    status      pgqrs.run_status NOT NULL DEFAULT 'pending',
    input       jsonb NOT NULL,
    output      jsonb,
    error       text,
    job_id      bigint,
    wake_at     timestamptz,
    waiting_for text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    CONSTRAINT runs_output_only_when_succeeded CHECK (output IS NULL OR status = 'succeeded')
);

CREATE INDEX runs_workflow_created ON pgqrs.runs (workflow, created_at);
CREATE INDEX runs_active ON pgqrs.runs (status) WHERE status NOT IN ('succeeded', 'failed', 'cancelled');

-- The run state machine, enforced whoever writes the row.
CREATE FUNCTION pgqrs.runs_check_transition() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = OLD.status THEN
        RETURN NEW;
    END IF;
    IF (OLD.status, NEW.status) IN (
        ('pending', 'running'), ('pending', 'cancelled'),
        ('running', 'sleeping'), ('running', 'waiting'), ('running', 'succeeded'),
        ('running', 'failed'), ('running', 'cancelled'),
        ('sleeping', 'running'), ('sleeping', 'cancelled'),
        ('waiting', 'running'), ('waiting', 'cancelled'),
        ('failed', 'pending'), ('cancelled', 'pending')
    ) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'illegal workflow run transition from % to % (run %)', OLD.status, NEW.status, OLD.id
        USING ERRCODE = 'check_violation', CONSTRAINT = 'runs_status_transition';
END
$$;

CREATE TRIGGER runs_status_transition BEFORE UPDATE OF status ON pgqrs.runs
    FOR EACH ROW EXECUTE FUNCTION pgqrs.runs_check_transition();

-- One row per completed step; (run_id, seq) is the step's identity, so a step is recorded
-- at most once. `fingerprint` identifies the output type's JSON schema.
CREATE TABLE pgqrs.steps (
    run_id       bigint NOT NULL REFERENCES pgqrs.runs (id) ON DELETE CASCADE,
    seq          integer NOT NULL,
    name         text NOT NULL,
    input        jsonb NOT NULL,
    output       jsonb NOT NULL,
    fingerprint  text NOT NULL,
    attempts     integer NOT NULL DEFAULT 1,
    completed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE pgqrs.signals (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id       bigint NOT NULL REFERENCES pgqrs.runs (id) ON DELETE CASCADE,
    name         text NOT NULL,
    payload      jsonb NOT NULL,
    sent_at      timestamptz NOT NULL DEFAULT now(),
    consumed_seq integer
);

CREATE INDEX signals_pending ON pgqrs.signals (run_id, name, id) WHERE consumed_seq IS NULL;
