//! `pgqrs.jobs`, `pgqrs.leases` and the archive: insert, claim, and the lease-fenced
//! transitions out of a claim.
//!
//! A claim moves its jobs into `pgqrs.archive` and leases them under one row of
//! `pgqrs.leases` (migration 0008). Every function that acts on a claimed job takes
//! `(ids, tokens)` and first settles them (`pgqrs.lease_settle`): a job is touched only while
//! the lease named by its token still lists it, so a holder whose lease was taken over acts
//! on nothing and the caller reports [`Error::LeaseLost`](crate::Error::LeaseLost).

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

/// A job as a claim returns it; the payload is still JSON text.
#[derive(Debug)]
pub(crate) struct ClaimedRow {
    pub(crate) id: i64,
    pub(crate) payload: String,
    pub(crate) priority: i16,
    pub(crate) attempts: i32,
    pub(crate) enqueued_at: DateTime<Utc>,
    pub(crate) lease_token: i64,
    pub(crate) lease_expires_at: DateTime<Utc>,
}

/// Held jobs to archive in the claim statement: ids, their lease tokens, the outcome.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ack<'a> {
    pub(crate) ids: &'a [i64],
    pub(crate) tokens: &'a [i64],
    pub(crate) outcome: &'a str,
}

impl Ack<'_> {
    pub(crate) const NONE: Ack<'static> = Ack {
        ids: &[],
        tokens: &[],
        outcome: "",
    };
}

/// The outcome of one claim statement: the queue's controls and the claimed jobs.
#[derive(Debug)]
pub(crate) struct ClaimBatch {
    /// The acked jobs that were archived (the others had lost their lease).
    pub(crate) archived: Vec<i64>,
    pub(crate) paused: bool,
    /// The queue has a global concurrency cap: claim holding its claim lock.
    pub(crate) capped: bool,
    pub(crate) jobs: Vec<ClaimedRow>,
}

/// An inserted job, or the existing one holding its unique key.
#[derive(Debug)]
pub(crate) struct InsertedRow {
    pub(crate) id: i64,
    pub(crate) run_at: DateTime<Utc>,
    pub(crate) duplicate: bool,
}

/// What a retry did to one job: runnable again at `run_at`, or dead-lettered (`None`).
#[derive(Debug)]
pub(crate) struct RetriedRow {
    pub(crate) id: i64,
    pub(crate) run_at: Option<DateTime<Utc>>,
}

/// The channel producers notify and workers listen on; the payload is the queue id.
pub(crate) const WAKE_CHANNEL: &str = "pgqrs_jobs";

/// Inserts JSON payloads (as text) into a queue in one statement; rows come back in input
/// order, none if the queue was deleted. With `notify`, one `NOTIFY pgqrs_jobs, '<queue
/// id>'` goes out at commit.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn job_insert_batch<'c>(
    db: impl PgExecutor<'c>,
    queue_id: i32,
    payloads: &[String],
    priority: i16,
    run_at: Option<DateTime<Utc>>,
    delay_secs: f64,
    notify: bool,
) -> sqlx::Result<Vec<InsertedRow>> {
    let mut rows = sqlx::query_as!(
        InsertedRow,
        r#"WITH inserted AS (
             INSERT INTO pgqrs.jobs (queue_id, payload, priority, run_at)
             -- The subquery is computed once for the batch, not per row.
             SELECT $1, t.payload::jsonb, $3, (SELECT coalesce($4, now()) + make_interval(secs => $5))
             FROM unnest($2::text[]) WITH ORDINALITY AS t(payload, ord)
             WHERE EXISTS (SELECT 1 FROM pgqrs.queues q WHERE q.id = $1)
             ORDER BY t.ord
             RETURNING id, run_at
           ),
           wake AS (
             SELECT pg_notify('pgqrs_jobs', $1::text) WHERE $6
           )
           SELECT i.id AS "id!", i.run_at AS "run_at!", false AS "duplicate!"
           FROM inserted i LEFT JOIN wake ON true"#,
        queue_id,
        payloads,
        priority,
        run_at,
        delay_secs,
        notify
    )
    .fetch_all(db)
    .await?;
    // Identity values are drawn in insertion order, which follows `ord`.
    rows.sort_unstable_by_key(|row| row.id);
    Ok(rows)
}

/// Inserts one JSON payload (as text); `None` if the queue was deleted. The single-job
/// form of [`job_insert_batch`], without the batch's unnesting and ordering.
pub(crate) async fn job_insert_one<'c>(
    db: impl PgExecutor<'c>,
    queue_id: i32,
    payload: &str,
    priority: i16,
    run_at: Option<DateTime<Utc>>,
    delay_secs: f64,
    notify: bool,
) -> sqlx::Result<Option<InsertedRow>> {
    sqlx::query_as!(
        InsertedRow,
        // No CTE: the wake-up is a one-time filter of the insert itself (`pg_notify` returns
        // a non-null void), which saves a CTE scan and a join on every call.
        r#"INSERT INTO pgqrs.jobs (queue_id, payload, priority, run_at)
           SELECT $1, $2::text::jsonb, $3, coalesce($4, now()) + make_interval(secs => $5)
           WHERE EXISTS (SELECT 1 FROM pgqrs.queues q WHERE q.id = $1)
             AND (NOT $6 OR pg_notify('pgqrs_jobs', $1::text) IS NOT NULL)
           RETURNING id AS "id!", run_at AS "run_at!", false AS "duplicate!""#,
        queue_id,
        payload,
        priority,
        run_at,
        delay_secs,
        notify
    )
    .fetch_optional(db)
    .await
}

/// Inserts one job unless a waiting or leased job of the queue holds `unique_key` (a row of
/// `pgqrs.job_keys`); then returns that job with `duplicate` set. `None` when the holder of
/// the key committed after this statement's snapshot was taken (ask again), or when the
/// queue was deleted.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn job_insert_unique<'c>(
    db: impl PgExecutor<'c>,
    queue_id: i32,
    payload: &str,
    priority: i16,
    run_at: Option<DateTime<Utc>>,
    delay_secs: f64,
    unique_key: &str,
    notify: bool,
) -> sqlx::Result<Option<InsertedRow>> {
    sqlx::query_as!(
        InsertedRow,
        r#"WITH key AS (
             INSERT INTO pgqrs.job_keys (queue_id, unique_key, job_id)
             SELECT $1, $6, nextval('pgqrs.jobs_id_seq')
             WHERE EXISTS (SELECT 1 FROM pgqrs.queues q WHERE q.id = $1)
             ON CONFLICT (queue_id, unique_key) DO NOTHING
             RETURNING job_id
           ),
           inserted AS (
             INSERT INTO pgqrs.jobs (id, queue_id, payload, priority, run_at)
             SELECT k.job_id, $1, $2::text::jsonb, $3, coalesce($4, now()) + make_interval(secs => $5)
             FROM key k
             RETURNING id, run_at
           ),
           wake AS (
             SELECT pg_notify('pgqrs_jobs', $1::text) WHERE $7 AND EXISTS (SELECT 1 FROM inserted)
           )
           SELECT i.id AS "id!", i.run_at AS "run_at!", false AS "duplicate!"
           FROM inserted i LEFT JOIN wake ON true
           UNION ALL
           SELECT k.job_id, coalesce(j.run_at, a.run_at, a.archived_at), true
           FROM pgqrs.job_keys k
           LEFT JOIN pgqrs.jobs j ON j.id = k.job_id
           LEFT JOIN pgqrs.archive a ON a.id = k.job_id
           WHERE k.queue_id = $1 AND k.unique_key = $6 AND NOT EXISTS (SELECT 1 FROM key)"#,
        queue_id,
        payload,
        priority,
        run_at,
        delay_secs,
        unique_key,
        notify
    )
    .fetch_optional(db)
    .await
}

/// Archives `ack` and claims up to `limit` runnable jobs for `lease_secs`, in one
/// statement: the function `pgqrs.job_claim_batch` (`migrations/0009_lean_claim.sql`;
/// `0007_claim_function.sql` says why it is a function). `None` when the queue no longer
/// exists.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn job_claim_batch<'c>(
    db: impl PgExecutor<'c>,
    queue_id: i32,
    limit: i64,
    lease_secs: f64,
    worker_id: Option<i64>,
    holds_claim_lock: bool,
    ack: Ack<'_>,
) -> sqlx::Result<Option<ClaimBatch>> {
    let rows = sqlx::query_file!(
        "src/db/sql/job_claim_batch.sql",
        queue_id,
        limit,
        lease_secs,
        worker_id,
        holds_claim_lock,
        ack.ids,
        ack.tokens,
        ack.outcome
    )
    .fetch_all(db)
    .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let mut batch = ClaimBatch {
        archived: first.archived.clone().unwrap_or_default(),
        paused: first.paused,
        capped: first.global_concurrency.is_some(),
        jobs: Vec::with_capacity(rows.len()),
    };
    for row in rows {
        if let (Some(id), Some(payload), Some(priority), Some(attempts), Some(enqueued_at)) = (
            row.id,
            row.payload,
            row.priority,
            row.attempts,
            row.enqueued_at,
        ) && let (Some(lease_token), Some(lease_expires_at)) =
            (row.lease_token, row.lease_expires_at)
        {
            batch.jobs.push(ClaimedRow {
                id,
                payload,
                priority,
                attempts,
                enqueued_at,
                lease_token,
                lease_expires_at,
            });
        }
    }
    batch
        .jobs
        .sort_unstable_by_key(|row| (std::cmp::Reverse(row.priority), row.id));
    Ok(Some(batch))
}

/// Completes held jobs with `outcome`: their archive rows stay, relabelled when the
/// outcome is not `completed`. Returns the ids that were held.
pub(crate) async fn job_archive_batch<'c>(
    db: impl PgExecutor<'c>,
    ids: &[i64],
    tokens: &[i64],
    outcome: &str,
) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar!(
        r#"WITH held AS MATERIALIZED (
             SELECT s.id FROM pgqrs.lease_settle($1, $2) s
           ),
           relabelled AS (
             UPDATE pgqrs.archive a SET outcome = $3
             WHERE $3 <> 'completed' AND a.id = ANY (ARRAY(SELECT id FROM held))
           ),
           unkeyed AS (
             DELETE FROM pgqrs.job_keys k WHERE k.job_id = ANY (ARRAY(SELECT id FROM held))
           )
           SELECT id AS "id!" FROM held"#,
        ids,
        tokens,
        outcome
    )
    .fetch_all(db)
    .await
}

/// Deletes held jobs without history; returns the ids that were deleted.
pub(crate) async fn job_delete_batch<'c>(
    db: impl PgExecutor<'c>,
    ids: &[i64],
    tokens: &[i64],
) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar!(
        r#"WITH held AS MATERIALIZED (
             SELECT s.id FROM pgqrs.lease_settle($1, $2) s
           ),
           gone AS (
             DELETE FROM pgqrs.archive a WHERE a.id = ANY (ARRAY(SELECT id FROM held))
           ),
           unkeyed AS (
             DELETE FROM pgqrs.job_keys k WHERE k.job_id = ANY (ARRAY(SELECT id FROM held))
           )
           SELECT id AS "id!" FROM held"#,
        ids,
        tokens
    )
    .fetch_all(db)
    .await
}

/// Moves held jobs to the dead letters with `reason`; returns the ids that moved.
pub(crate) async fn job_bury_batch<'c>(
    db: impl PgExecutor<'c>,
    ids: &[i64],
    tokens: &[i64],
    reason: &str,
) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar!(
        r#"WITH held AS MATERIALIZED (
             SELECT s.id FROM pgqrs.lease_settle($1, $2) s
           ),
           gone AS (
             DELETE FROM pgqrs.archive a WHERE a.id = ANY (ARRAY(SELECT id FROM held))
             RETURNING a.id, a.queue_id, a.payload, a.priority, a.attempts, a.enqueued_at
           ),
           unkeyed AS (
             DELETE FROM pgqrs.job_keys k WHERE k.job_id = ANY (ARRAY(SELECT id FROM held))
           )
           INSERT INTO pgqrs.dead_letters (id, queue_id, payload, priority, attempts, enqueued_at, reason)
           SELECT id, queue_id, payload, priority, attempts, enqueued_at, $3 FROM gone
           RETURNING id"#,
        ids,
        tokens,
        reason
    )
    .fetch_all(db)
    .await
}

/// Hands held jobs back unclaimed, as if this delivery never happened; returns the ids.
pub(crate) async fn job_release_batch<'c>(
    db: impl PgExecutor<'c>,
    ids: &[i64],
    tokens: &[i64],
) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar!(
        r#"WITH held AS MATERIALIZED (
             SELECT s.id FROM pgqrs.lease_settle($1, $2) s
           ),
           gone AS (
             DELETE FROM pgqrs.archive a WHERE a.id = ANY (ARRAY(SELECT id FROM held))
             RETURNING a.id, a.queue_id, a.payload, a.priority, a.run_at, a.attempts,
                       a.enqueued_at, a.last_error, a.archived_at
           )
           INSERT INTO pgqrs.jobs (id, queue_id, payload, priority, run_at, attempts, enqueued_at, last_error)
           SELECT id, queue_id, payload, priority, coalesce(run_at, archived_at), greatest(attempts - 1, 0),
                  enqueued_at, last_error
           FROM gone
           RETURNING id"#,
        ids,
        tokens
    )
    .fetch_all(db)
    .await
}

/// Moves the end of the lease holding job `id` (and the rest of its batch) to now +
/// `lease_secs`; `None` when the lease is not held.
pub(crate) async fn job_extend_lease<'c>(
    db: impl PgExecutor<'c>,
    id: i64,
    token: i64,
    lease_secs: f64,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar!(
        r#"UPDATE pgqrs.leases
           SET expires_at = now() + make_interval(secs => $3)
           WHERE token = $2 AND $1 = ANY (ids)
           RETURNING expires_at"#,
        id,
        token,
        lease_secs
    )
    .fetch_optional(db)
    .await
}

/// Ends held jobs' deliveries as failed, each with its own delay and error: runnable again
/// after the delay, or to the dead letters when it has had `max_attempts` deliveries. Only
/// jobs whose lease is still held appear in the result.
pub(crate) async fn job_retry_batch<'c>(
    db: impl PgExecutor<'c>,
    ids: &[i64],
    tokens: &[i64],
    delay_secs: &[f64],
    errors: &[Option<String>],
) -> sqlx::Result<Vec<RetriedRow>> {
    sqlx::query_as!(
        RetriedRow,
        r#"WITH held AS MATERIALIZED (
             SELECT s.id FROM pgqrs.lease_settle($1, $2) s
           ),
           gone AS (
             DELETE FROM pgqrs.archive a WHERE a.id = ANY (ARRAY(SELECT id FROM held))
             RETURNING a.id, a.queue_id, a.payload, a.priority, a.attempts, a.enqueued_at
           ),
           target AS MATERIALIZED (
             SELECT g.*, t.delay_secs, t.error, g.attempts >= q.max_attempts AS exhausted
             FROM gone g
             JOIN unnest($1::bigint[], $3::float8[], $4::text[]) AS t(id, delay_secs, error)
                  ON t.id = g.id
             JOIN pgqrs.queues q ON q.id = g.queue_id
           ),
           retried AS (
             INSERT INTO pgqrs.jobs (id, queue_id, payload, priority, run_at, attempts, enqueued_at, last_error)
             SELECT id, queue_id, payload, priority, now() + make_interval(secs => delay_secs),
                    attempts, enqueued_at, error
             FROM target WHERE NOT exhausted
             RETURNING id, run_at
           ),
           buried AS (
             INSERT INTO pgqrs.dead_letters (id, queue_id, payload, priority, attempts, enqueued_at, reason)
             SELECT id, queue_id, payload, priority, attempts, enqueued_at,
                    coalesce(error, 'nacked') || ' (after ' || attempts || ' deliveries, the queue''s max_attempts)'
             FROM target WHERE exhausted
             RETURNING id
           ),
           unkeyed AS (
             DELETE FROM pgqrs.job_keys k WHERE k.job_id = ANY (ARRAY(SELECT id FROM buried))
           )
           SELECT id AS "id!", run_at AS "run_at?" FROM retried
           UNION ALL
           SELECT id, NULL FROM buried"#,
        ids,
        tokens,
        delay_secs,
        errors as &[Option<String>]
    )
    .fetch_all(db)
    .await
}

/// A job wherever it is now: waiting or leased in `pgqrs.jobs`, in the archive, or in
/// the dead letters. `state` is `ready`, `delayed`, `leased`, `archived` or `dead`.
#[derive(Debug)]
pub(crate) struct JobRow {
    pub(crate) id: i64,
    pub(crate) queue: String,
    pub(crate) state: String,
    pub(crate) payload: serde_json::Value,
    pub(crate) priority: i16,
    pub(crate) attempts: i32,
    pub(crate) enqueued_at: DateTime<Utc>,
    pub(crate) run_at: Option<DateTime<Utc>>,
    pub(crate) lease_expires_at: Option<DateTime<Utc>>,
    pub(crate) worker_id: Option<i64>,
    pub(crate) finished_at: Option<DateTime<Utc>>,
    pub(crate) outcome: Option<String>,
    pub(crate) last_error: Option<String>,
}

/// Looks a job up by id in the hot table, the archive (in flight or settled) and the dead
/// letters.
pub(crate) async fn job_get<'c>(db: impl PgExecutor<'c>, id: i64) -> sqlx::Result<Option<JobRow>> {
    sqlx::query_as!(
        JobRow,
        r#"SELECT j.id AS "id!", q.name AS "queue!",
                  CASE WHEN j.lease_token IS NOT NULL THEN 'leased'
                       WHEN j.run_at > now() THEN 'delayed'
                       ELSE 'ready' END AS "state!",
                  j.payload AS "payload!", j.priority AS "priority!", j.attempts AS "attempts!",
                  j.enqueued_at AS "enqueued_at!", j.run_at AS "run_at?",
                  NULL::timestamptz AS "lease_expires_at?", NULL::bigint AS "worker_id?",
                  NULL::timestamptz AS "finished_at?", NULL::text AS "outcome?",
                  j.last_error AS "last_error?"
           FROM pgqrs.jobs j JOIN pgqrs.queues q ON q.id = j.queue_id
           WHERE j.id = $1
           UNION ALL
           SELECT a.id, q.name, CASE WHEN l.token IS NULL THEN 'archived' ELSE 'leased' END,
                  a.payload, a.priority, a.attempts, a.enqueued_at,
                  CASE WHEN l.token IS NOT NULL THEN a.run_at END, l.expires_at, l.worker_id,
                  CASE WHEN l.token IS NULL THEN a.archived_at END,
                  CASE WHEN l.token IS NULL THEN a.outcome END,
                  CASE WHEN l.token IS NOT NULL THEN a.last_error END
           FROM pgqrs.archive a
           JOIN pgqrs.queues q ON q.id = a.queue_id
           LEFT JOIN pgqrs.leases l ON l.token = a.lease_token AND a.id = ANY (l.ids)
           WHERE a.id = $1
           UNION ALL
           SELECT d.id, q.name, 'dead', d.payload, d.priority, d.attempts, d.enqueued_at,
                  NULL, NULL, NULL, d.failed_at, NULL, d.reason
           FROM pgqrs.dead_letters d JOIN pgqrs.queues q ON q.id = d.queue_id
           WHERE d.id = $1
           LIMIT 1"#,
        id
    )
    .fetch_optional(db)
    .await
}

/// Makes a job runnable now: a waiting one (ready or delayed) gets `run_at = now()`, an
/// archived or dead-lettered one moves back into its queue (same id, attempts reset).
/// Wakes the queue's workers. Returns the state the job was in (`leased` jobs are left
/// alone); `None` when there is no such job.
pub(crate) async fn job_retry<'c>(
    db: impl PgExecutor<'c>,
    id: i64,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        r#"WITH waiting AS (
             SELECT j.id, j.queue_id,
                    CASE WHEN j.run_at > now() THEN 'delayed' ELSE 'ready' END AS state
             FROM pgqrs.jobs j WHERE j.id = $1
             FOR UPDATE
           ),
           hurried AS (
             UPDATE pgqrs.jobs j SET run_at = now()
             FROM waiting w
             WHERE j.id = w.id AND w.state = 'delayed'
             RETURNING j.id
           ),
           in_flight AS (
             SELECT a.queue_id, 'leased' AS state
             FROM pgqrs.archive a JOIN pgqrs.leases l ON l.token = a.lease_token AND a.id = ANY (l.ids)
             WHERE a.id = $1
           ),
           from_dead AS (
             DELETE FROM pgqrs.dead_letters d
             WHERE d.id = $1 AND EXISTS (SELECT 1 FROM pgqrs.queues q WHERE q.id = d.queue_id)
             RETURNING d.id, d.queue_id, d.payload, d.priority, d.enqueued_at, 'dead' AS state
           ),
           from_archive AS (
             DELETE FROM pgqrs.archive a
             WHERE a.id = $1 AND EXISTS (SELECT 1 FROM pgqrs.queues q WHERE q.id = a.queue_id)
               AND NOT EXISTS (SELECT 1 FROM in_flight)
             RETURNING a.id, a.queue_id, a.payload, a.priority, a.enqueued_at, 'archived' AS state
           ),
           revived AS (
             INSERT INTO pgqrs.jobs (id, queue_id, payload, priority, enqueued_at)
             SELECT id, queue_id, payload, priority, enqueued_at FROM from_dead
             UNION ALL
             SELECT id, queue_id, payload, priority, enqueued_at FROM from_archive
             RETURNING id, queue_id
           ),
           found AS (
             SELECT queue_id, state FROM waiting
             UNION ALL SELECT queue_id, state FROM in_flight
             UNION ALL SELECT queue_id, state FROM from_dead
             UNION ALL SELECT queue_id, state FROM from_archive
           ),
           wake AS (
             SELECT pg_notify('pgqrs_jobs', f.queue_id::text)
             FROM found f WHERE f.state <> 'leased'
           )
           SELECT f.state AS "state!" FROM found f LEFT JOIN wake ON true
           LIMIT 1"#,
        id
    )
    .fetch_optional(db)
    .await
}

/// Cancels a waiting job: it moves to the archive with the outcome `cancelled`. Returns
/// the state the job was in, as [`job_get`] names it: only a `ready` or `delayed` job was
/// cancelled, a `leased` one is left to its holder; `None` when there is no such job, or
/// when a claim took it after this statement's snapshot (look again).
pub(crate) async fn job_cancel<'c>(
    db: impl PgExecutor<'c>,
    id: i64,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        r#"WITH gone AS (
             DELETE FROM pgqrs.jobs j WHERE j.id = $1 AND j.lease_token IS NULL
             RETURNING j.id, j.queue_id, j.payload, j.priority, j.attempts, j.enqueued_at,
                       CASE WHEN j.run_at > now() THEN 'delayed' ELSE 'ready' END AS state
           ),
           archived AS (
             INSERT INTO pgqrs.archive (id, queue_id, payload, priority, attempts, enqueued_at, outcome)
             SELECT id, queue_id, payload, priority, attempts, enqueued_at, 'cancelled' FROM gone
           ),
           unkeyed AS (
             DELETE FROM pgqrs.job_keys k WHERE k.job_id = $1 AND EXISTS (SELECT 1 FROM gone)
           )
           SELECT g.state AS "state!" FROM gone g
           UNION ALL
           SELECT CASE WHEN EXISTS (SELECT 1 FROM pgqrs.leases l
                                    WHERE l.token = a.lease_token AND a.id = ANY (l.ids))
                       THEN 'leased' ELSE 'archived' END
           FROM pgqrs.archive a WHERE a.id = $1
           UNION ALL
           SELECT 'dead' FROM pgqrs.dead_letters d WHERE d.id = $1
           LIMIT 1"#,
        id
    )
    .fetch_optional(db)
    .await
}
