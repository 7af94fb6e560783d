//! `pgqrs.runs`: workflow runs and the job that drives each one.
//!
//! Every write made on behalf of an executor is fenced by the driving job's lease token,
//! the same way job transitions are.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

/// Max deliveries of a workflow queue's jobs: a crashed executor costs one, sleeps and
/// waits cost none.
pub(crate) const WORKFLOW_QUEUE_MAX_ATTEMPTS: i32 = 1000;

/// An executor's hold on a run: the run and the lease token of its driving job.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunLease {
    pub(crate) run_id: i64,
    pub(crate) job_id: i64,
    pub(crate) token: i64,
}

/// A new run and its driving job.
#[derive(Debug)]
pub(crate) struct CreatedRow {
    pub(crate) run_id: i64,
    pub(crate) job_id: i64,
    /// The lease token when the creator holds the job to execute the run itself.
    pub(crate) token: Option<i64>,
}

/// A run as an executor starts it: its identity, status and recorded steps.
#[derive(Debug)]
pub(crate) struct BegunRow {
    pub(crate) workflow: String,
    pub(crate) version: String,
    pub(crate) status: String,
    pub(crate) input: String,
    pub(crate) output: Option<String>,
    pub(crate) error: Option<String>,
    /// JSON array of the recorded steps, by sequence number.
    pub(crate) steps: String,
    /// The caller's lease on the driving job is valid.
    pub(crate) leased: bool,
}

/// A run's status and result, for handles.
#[derive(Debug)]
pub(crate) struct StatusRow {
    pub(crate) status: String,
    pub(crate) output: Option<String>,
    pub(crate) error: Option<String>,
}

/// Creates a run of `workflow` and its job in the queue `queue`, creating that queue if
/// needed. With `lease_secs`, the caller holds the job (to execute the run now) and the run
/// starts `running`; without, the run is `pending` and a worker picks it up. `None` when a
/// concurrent creator of the queue won the race: ask again.
pub(crate) async fn run_create<'c>(
    db: impl PgExecutor<'c>,
    workflow: &str,
    version: &str,
    input: &str,
    queue: &str,
    lease_secs: Option<f64>,
) -> sqlx::Result<Option<CreatedRow>> {
    sqlx::query_as!(
        CreatedRow,
        r#"WITH existing AS (
             SELECT id FROM pgqrs.queues WHERE name = $4
           ),
           created AS (
             INSERT INTO pgqrs.queues (name, max_attempts)
             SELECT $4, $6 WHERE NOT EXISTS (SELECT 1 FROM existing)
             ON CONFLICT (name) DO NOTHING
             RETURNING id
           ),
           queue AS (
             SELECT id FROM existing UNION ALL SELECT id FROM created
           ),
           ids AS (
             SELECT nextval('pgqrs.jobs_id_seq') AS job_id,
                    CASE WHEN $5::float8 IS NOT NULL THEN nextval('pgqrs.lease_tokens') END AS token
           ),
           run AS (
             INSERT INTO pgqrs.runs (workflow, version, status, input, job_id)
             SELECT $1, $2,
                    (CASE WHEN $5::float8 IS NOT NULL THEN 'running' ELSE 'pending' END)::pgqrs.run_status,
                    $3::text::jsonb, ids.job_id
             FROM ids, queue
             RETURNING id, job_id
           ),
           waiting AS (
             INSERT INTO pgqrs.jobs (id, queue_id, payload)
             SELECT run.job_id, queue.id, jsonb_build_object('run_id', run.id)
             FROM run, ids, queue
             WHERE ids.token IS NULL
           ),
           in_flight AS (
             INSERT INTO pgqrs.archive (id, queue_id, payload, priority, attempts, enqueued_at,
                                        outcome, lease_token, run_at)
             SELECT run.job_id, queue.id, jsonb_build_object('run_id', run.id), 0, 1, now(),
                    'completed', ids.token, now()
             FROM run, ids, queue
             WHERE ids.token IS NOT NULL
           ),
           lease AS (
             INSERT INTO pgqrs.leases (token, queue_id, expires_at, ids)
             SELECT ids.token, queue.id, now() + make_interval(secs => $5::float8), ARRAY[run.job_id]
             FROM run, ids, queue
             WHERE ids.token IS NOT NULL
           ),
           wake AS (
             SELECT pg_notify('pgqrs_jobs', queue.id::text) FROM queue WHERE $5::float8 IS NULL
           )
           SELECT run.id AS "run_id!", run.job_id AS "job_id!", ids.token AS "token?"
           FROM run CROSS JOIN ids CROSS JOIN queue LEFT JOIN wake ON true"#,
        workflow,
        version,
        input,
        queue,
        lease_secs,
        WORKFLOW_QUEUE_MAX_ATTEMPTS
    )
    .fetch_optional(db)
    .await
}

/// Starts (or resumes) executing a run under the lease `(job_id, token)`: a pending,
/// sleeping or waiting run becomes running. Returns the run with its recorded steps;
/// `None` if there is no such run.
pub(crate) async fn run_begin<'c>(
    db: impl PgExecutor<'c>,
    lease: RunLease,
) -> sqlx::Result<Option<BegunRow>> {
    sqlx::query_as!(
        BegunRow,
        r#"WITH lease AS (
             SELECT 1 FROM pgqrs.leases WHERE token = $3 AND $2 = ANY (ids) FOR SHARE
           ),
           started AS (
             UPDATE pgqrs.runs
             SET status = 'running', wake_at = NULL, waiting_for = NULL, updated_at = now()
             WHERE id = $1 AND status IN ('pending', 'sleeping', 'waiting')
               AND EXISTS (SELECT 1 FROM lease)
             RETURNING id
           )
           SELECT r.workflow, r.version,
                  CASE WHEN EXISTS (SELECT 1 FROM started) THEN 'running' ELSE r.status::text END
                      AS "status!",
                  r.input::text AS "input!", r.output::text AS output, r.error,
                  coalesce((SELECT json_agg(json_build_object(
                               'seq', s.seq, 'name', s.name, 'input', s.input,
                               'output', s.output, 'fingerprint', s.fingerprint)
                             ORDER BY s.seq)
                            FROM pgqrs.steps s WHERE s.run_id = r.id), '[]')::text AS "steps!",
                  EXISTS (SELECT 1 FROM lease) AS "leased!"
           FROM pgqrs.runs r
           WHERE r.id = $1"#,
        lease.run_id,
        lease.job_id,
        lease.token
    )
    .fetch_optional(db)
    .await
}

/// Ends a run as `succeeded` (with `output`) or `failed` (with `error`) and settles its
/// driving job (its archive row stays, with the outcome `failed` for a failed run), in one
/// statement; `false` when the lease was lost or the run is not active.
pub(crate) async fn run_finish<'c>(
    db: impl PgExecutor<'c>,
    lease: RunLease,
    output: Option<&str>,
    error: Option<&str>,
) -> sqlx::Result<bool> {
    let done = sqlx::query_scalar!(
        r#"WITH dropped AS (
             -- A run executed by its creator is the only job of its lease.
             DELETE FROM pgqrs.leases WHERE token = $3 AND ids = ARRAY[$2::bigint]
             RETURNING token
           ),
           settled AS (
             -- A run claimed in a batch by a worker: taken out of its batch's lease.
             SELECT s.id FROM pgqrs.lease_settle(ARRAY[$2::bigint], ARRAY[$3::bigint]) s
             WHERE NOT EXISTS (SELECT 1 FROM dropped)
           ),
           job AS MATERIALIZED (
             SELECT 1 FROM dropped UNION ALL SELECT 1 FROM settled
           ),
           relabelled AS (
             UPDATE pgqrs.archive a SET outcome = 'failed'
             WHERE a.id = $2 AND $5::text IS NOT NULL AND EXISTS (SELECT 1 FROM job)
           )
           UPDATE pgqrs.runs
           SET status = (CASE WHEN $5::text IS NULL THEN 'succeeded' ELSE 'failed' END)::pgqrs.run_status,
               output = $4::text::jsonb, error = $5, finished_at = now(), updated_at = now(),
               job_id = NULL
           WHERE id = $1 AND status IN ('pending', 'running', 'sleeping', 'waiting')
             AND EXISTS (SELECT 1 FROM job)
           RETURNING id"#,
        lease.run_id,
        lease.job_id,
        lease.token,
        output,
        error
    )
    .fetch_optional(db)
    .await?;
    Ok(done.is_some())
}

/// Records the durable sleep at `seq` and suspends the run until `now + secs`: the run
/// becomes `sleeping` and its job waits until then, its lease released (the delivery is
/// not counted). Returns the wake-up time; `None` when the lease was lost.
pub(crate) async fn run_sleep<'c>(
    db: impl PgExecutor<'c>,
    lease: RunLease,
    seq: i32,
    secs: f64,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar!(
        r#"WITH running AS (
             SELECT 1 FROM pgqrs.runs WHERE id = $1 AND status = 'running' FOR UPDATE
           ),
           lease AS MATERIALIZED (
             SELECT s.id FROM pgqrs.lease_settle(
                 ARRAY(SELECT $2::bigint FROM running), ARRAY(SELECT $3::bigint FROM running)) s
           ),
           wake AS (
             SELECT now() + make_interval(secs => $5) AS at
           ),
           run AS (
             UPDATE pgqrs.runs
             SET status = 'sleeping', wake_at = (SELECT at FROM wake), updated_at = now()
             WHERE id = $1 AND status = 'running' AND EXISTS (SELECT 1 FROM lease)
             RETURNING id
           ),
           step AS (
             INSERT INTO pgqrs.steps (run_id, seq, name, input, output, fingerprint)
             SELECT $1, $4, 'pgqrs::sleep', to_jsonb($5), to_jsonb((SELECT at FROM wake)), 'timestamp'
             FROM run
           ),
           gone AS (
             DELETE FROM pgqrs.archive a WHERE a.id = $2 AND EXISTS (SELECT 1 FROM run)
             RETURNING a.id, a.queue_id, a.payload, a.priority, a.attempts, a.enqueued_at
           ),
           job AS (
             INSERT INTO pgqrs.jobs (id, queue_id, payload, priority, run_at, attempts, enqueued_at)
             SELECT id, queue_id, payload, priority, (SELECT at FROM wake), greatest(attempts - 1, 0),
                    enqueued_at
             FROM gone
             RETURNING id
           )
           SELECT (SELECT at FROM wake) AS "at!" FROM job"#,
        lease.run_id,
        lease.job_id,
        lease.token,
        seq,
        secs
    )
    .fetch_optional(db)
    .await
}

/// Locks a run for a signal exchange (until the transaction ends); returns its status and
/// driving job.
pub(crate) async fn run_lock(
    conn: &mut PgConnection,
    run_id: i64,
) -> sqlx::Result<Option<(String, Option<i64>)>> {
    let row = sqlx::query!(
        r#"SELECT status::text AS "status!", job_id FROM pgqrs.runs WHERE id = $1 FOR UPDATE"#,
        run_id
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|row| (row.status, row.job_id)))
}

/// Suspends a locked, running run until signal `name` arrives: `waiting`, and its job
/// parked (released, not counted, runnable at infinity). `false` when the lease was lost.
pub(crate) async fn run_park(
    conn: &mut PgConnection,
    lease: RunLease,
    name: &str,
) -> sqlx::Result<bool> {
    let parked = sqlx::query_scalar!(
        r#"WITH held AS MATERIALIZED (
             SELECT s.id FROM pgqrs.lease_settle(ARRAY[$2::bigint], ARRAY[$3::bigint]) s
           ),
           gone AS (
             DELETE FROM pgqrs.archive a WHERE a.id = ANY (ARRAY(SELECT id FROM held))
             RETURNING a.id, a.queue_id, a.payload, a.priority, a.attempts, a.enqueued_at
           ),
           job AS (
             INSERT INTO pgqrs.jobs (id, queue_id, payload, priority, run_at, attempts, enqueued_at)
             SELECT id, queue_id, payload, priority, 'infinity', greatest(attempts - 1, 0), enqueued_at
             FROM gone
             RETURNING id
           )
           UPDATE pgqrs.runs
           SET status = 'waiting', waiting_for = $4, updated_at = now()
           WHERE id = $1 AND status = 'running' AND EXISTS (SELECT 1 FROM job)
           RETURNING id"#,
        lease.run_id,
        lease.job_id,
        lease.token,
        name
    )
    .fetch_optional(conn)
    .await?;
    Ok(parked.is_some())
}

/// A run and, when it was free to take, the new lease on its driving job.
#[derive(Debug)]
pub(crate) struct TakenRow {
    pub(crate) status: String,
    pub(crate) job_id: Option<i64>,
    pub(crate) token: Option<i64>,
}

/// Leases the driving job of run `run_id` to the caller if nobody holds it (it waits for a
/// worker, or its holder's lease ran out): a new token, so a late former holder is fenced
/// off. `None` when there is no such run; no token when its job is held or gone.
pub(crate) async fn run_take_over<'c>(
    db: impl PgExecutor<'c>,
    run_id: i64,
    lease_secs: f64,
) -> sqlx::Result<Option<TakenRow>> {
    sqlx::query_as!(
        TakenRow,
        r#"WITH run AS (
             SELECT status, job_id FROM pgqrs.runs WHERE id = $1
           ),
           lease AS MATERIALIZED (
             SELECT nextval('pgqrs.lease_tokens') AS token
           ),
           waiting AS (
             DELETE FROM pgqrs.jobs j USING run WHERE j.id = run.job_id
             RETURNING j.id, j.queue_id, j.payload, j.priority, j.attempts, j.enqueued_at,
                       j.run_at, j.last_error
           ),
           moved AS (
             INSERT INTO pgqrs.archive (id, queue_id, payload, priority, attempts, enqueued_at,
                                        outcome, lease_token, run_at, last_error)
             SELECT w.id, w.queue_id, w.payload, w.priority, w.attempts + 1, w.enqueued_at,
                    'completed', (SELECT token FROM lease), w.run_at, w.last_error
             FROM waiting w
             RETURNING id, queue_id
           ),
           in_archive AS MATERIALIZED (
             SELECT a.id, a.lease_token FROM pgqrs.archive a, run WHERE a.id = run.job_id
           ),
           stale AS MATERIALIZED (
             SELECT s.id FROM pgqrs.lease_settle(
                 ARRAY(SELECT id FROM in_archive), ARRAY(SELECT lease_token FROM in_archive), true) s
           ),
           retaken AS (
             UPDATE pgqrs.archive a
             SET lease_token = (SELECT token FROM lease), attempts = a.attempts + 1
             FROM stale s WHERE a.id = s.id
             RETURNING a.id, a.queue_id
           ),
           taken AS (
             SELECT id, queue_id FROM moved UNION ALL SELECT id, queue_id FROM retaken
           ),
           recorded AS (
             INSERT INTO pgqrs.leases (token, queue_id, expires_at, ids)
             SELECT (SELECT token FROM lease), t.queue_id, now() + make_interval(secs => $2),
                    ARRAY[t.id]
             FROM taken t
           )
           SELECT run.status::text AS "status!", taken.id AS "job_id?",
                  CASE WHEN taken.id IS NOT NULL THEN (SELECT token FROM lease) END AS "token?"
           FROM run LEFT JOIN taken ON true"#,
        run_id,
        lease_secs
    )
    .fetch_optional(db)
    .await
}

/// Makes a parked run's job runnable now and wakes the workers of its queue.
pub(crate) async fn run_wake(conn: &mut PgConnection, job_id: i64) -> sqlx::Result<()> {
    sqlx::query!(
        r#"WITH job AS (
             UPDATE pgqrs.jobs SET run_at = now()
             WHERE id = $1 AND lease_token IS NULL
             RETURNING queue_id
           )
           SELECT 1 AS "woken!" FROM job, pg_notify('pgqrs_jobs', job.queue_id::text)"#,
        job_id
    )
    .fetch_optional(conn)
    .await?;
    Ok(())
}

/// A run's status and result.
pub(crate) async fn run_status<'c>(
    db: impl PgExecutor<'c>,
    run_id: i64,
) -> sqlx::Result<Option<StatusRow>> {
    sqlx::query_as!(
        StatusRow,
        r#"SELECT status::text AS "status!", output::text AS output, error
           FROM pgqrs.runs WHERE id = $1"#,
        run_id
    )
    .fetch_optional(db)
    .await
}

/// Cancels an active run and deletes its job (an executor holding it loses its lease).
/// Returns the status before: the run was cancelled if that status was active.
pub(crate) async fn run_cancel<'c>(
    db: impl PgExecutor<'c>,
    run_id: i64,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        r#"WITH before AS (
             SELECT status, job_id FROM pgqrs.runs WHERE id = $1 FOR UPDATE
           ),
           cancelled AS (
             UPDATE pgqrs.runs
             SET status = 'cancelled', finished_at = now(), updated_at = now(), job_id = NULL,
                 wake_at = NULL, waiting_for = NULL
             WHERE id = $1 AND status IN ('pending', 'running', 'sleeping', 'waiting')
             RETURNING id
           ),
           job AS (
             DELETE FROM pgqrs.jobs
             WHERE id = (SELECT job_id FROM before) AND EXISTS (SELECT 1 FROM cancelled)
           ),
           in_archive AS MATERIALIZED (
             SELECT a.id, a.lease_token FROM pgqrs.archive a, before b
             WHERE a.id = b.job_id AND EXISTS (SELECT 1 FROM cancelled)
           ),
           in_flight AS MATERIALIZED (
             SELECT s.id FROM pgqrs.lease_settle(
                 ARRAY(SELECT id FROM in_archive), ARRAY(SELECT lease_token FROM in_archive)) s
           ),
           unheld AS (
             DELETE FROM pgqrs.archive a WHERE a.id = ANY (ARRAY(SELECT id FROM in_flight))
           )
           SELECT status::text AS "status!" FROM before"#,
        run_id
    )
    .fetch_optional(db)
    .await
}

/// Puts a failed or cancelled run back to `pending` with a new job in `queue_id`: it
/// resumes after its last recorded step. Returns the status before.
pub(crate) async fn run_retry<'c>(
    db: impl PgExecutor<'c>,
    run_id: i64,
    queue_id: i32,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        r#"WITH before AS (
             SELECT status FROM pgqrs.runs WHERE id = $1 FOR UPDATE
           ),
           ids AS (
             SELECT nextval('pgqrs.jobs_id_seq') AS job_id
           ),
           retried AS (
             UPDATE pgqrs.runs
             SET status = 'pending', error = NULL, finished_at = NULL, updated_at = now(),
                 job_id = (SELECT job_id FROM ids)
             WHERE id = $1 AND status IN ('failed', 'cancelled')
             RETURNING id, job_id
           ),
           job AS (
             INSERT INTO pgqrs.jobs (id, queue_id, payload)
             SELECT job_id, $2, jsonb_build_object('run_id', id) FROM retried
             RETURNING id
           ),
           wake AS (
             SELECT pg_notify('pgqrs_jobs', $2::text) WHERE EXISTS (SELECT 1 FROM job)
           )
           SELECT status::text AS "status!" FROM before LEFT JOIN wake ON true"#,
        run_id,
        queue_id
    )
    .fetch_optional(db)
    .await
}

/// The workflow a run belongs to.
pub(crate) async fn run_workflow<'c>(
    db: impl PgExecutor<'c>,
    run_id: i64,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!("SELECT workflow FROM pgqrs.runs WHERE id = $1", run_id)
        .fetch_optional(db)
        .await
}

/// A run as listed and shown to an operator.
#[derive(Debug)]
pub(crate) struct RunRow {
    pub(crate) id: i64,
    pub(crate) workflow: String,
    pub(crate) version: String,
    pub(crate) status: String,
    pub(crate) input: serde_json::Value,
    pub(crate) output: Option<serde_json::Value>,
    pub(crate) error: Option<String>,
    pub(crate) wake_at: Option<DateTime<Utc>>,
    pub(crate) waiting_for: Option<String>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
    pub(crate) finished_at: Option<DateTime<Utc>>,
}

/// The most recent runs first (by id), optionally only those with `status` and/or of
/// `workflow`.
pub(crate) async fn run_list<'c>(
    db: impl PgExecutor<'c>,
    status: Option<&str>,
    workflow: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<RunRow>> {
    sqlx::query_as!(
        RunRow,
        r#"SELECT id, workflow, version, status::text AS "status!", input, output, error,
                  wake_at, waiting_for, created_at, updated_at, finished_at
           FROM pgqrs.runs
           WHERE ($1::text IS NULL OR status::text = $1)
             AND ($2::text IS NULL OR workflow = $2)
           ORDER BY id DESC
           LIMIT $3"#,
        status,
        workflow,
        limit
    )
    .fetch_all(db)
    .await
}

/// One run by id.
pub(crate) async fn run_get<'c>(
    db: impl PgExecutor<'c>,
    run_id: i64,
) -> sqlx::Result<Option<RunRow>> {
    sqlx::query_as!(
        RunRow,
        r#"SELECT id, workflow, version, status::text AS "status!", input, output, error,
                  wake_at, waiting_for, created_at, updated_at, finished_at
           FROM pgqrs.runs
           WHERE id = $1"#,
        run_id
    )
    .fetch_optional(db)
    .await
}
