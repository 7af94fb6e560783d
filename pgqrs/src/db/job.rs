//! `pgqrs.jobs`: insert, claim, and the lease-fenced transitions out of a claim.
//!
//! Every function that acts on a claimed job takes `(ids, tokens)`: a row is touched only
//! when its current `lease_token` matches, so a holder whose lease was taken over acts on
//! nothing and the caller reports [`Error::LeaseLost`](crate::Error::LeaseLost).

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

/// Inserts one job unless a waiting or leased job of the queue has `unique_key`; then
/// returns that job with `duplicate` set. `None` when the holder of the key committed after
/// this statement's snapshot was taken (ask again), or when the queue was deleted.
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
        r#"WITH inserted AS (
             INSERT INTO pgqrs.jobs (queue_id, payload, priority, run_at, unique_key)
             SELECT $1, $2::text::jsonb, $3, coalesce($4, now()) + make_interval(secs => $5), $6
             WHERE EXISTS (SELECT 1 FROM pgqrs.queues q WHERE q.id = $1)
             ON CONFLICT (queue_id, unique_key) WHERE unique_key IS NOT NULL DO NOTHING
             RETURNING id, run_at
           ),
           wake AS (
             SELECT pg_notify('pgqrs_jobs', $1::text) WHERE $7 AND EXISTS (SELECT 1 FROM inserted)
           )
           SELECT i.id AS "id!", i.run_at AS "run_at!", false AS "duplicate!"
           FROM inserted i LEFT JOIN wake ON true
           UNION ALL
           SELECT j.id, j.run_at, true
           FROM pgqrs.jobs j
           WHERE j.queue_id = $1 AND j.unique_key = $6 AND NOT EXISTS (SELECT 1 FROM inserted)"#,
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
/// statement: the function `pgqrs.job_claim_batch` (`migrations/0007_claim_function.sql`,
/// which says why it is a function). `None` when the queue no longer exists.
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

/// Moves held jobs to the archive with `outcome`; returns the ids that were archived.
pub(crate) async fn job_archive_batch<'c>(
    db: impl PgExecutor<'c>,
    ids: &[i64],
    tokens: &[i64],
    outcome: &str,
) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar!(
        r#"WITH done AS (
             DELETE FROM pgqrs.jobs j
             WHERE j.id = ANY($1::bigint[]) AND j.lease_token = ANY($2::bigint[])
             RETURNING j.id, j.queue_id, j.payload, j.priority, j.attempts, j.enqueued_at
           )
           INSERT INTO pgqrs.archive (id, queue_id, payload, priority, attempts, enqueued_at, outcome)
           SELECT id, queue_id, payload, priority, attempts, enqueued_at, $3 FROM done
           RETURNING id"#,
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
        "DELETE FROM pgqrs.jobs j
         WHERE j.id = ANY($1::bigint[]) AND j.lease_token = ANY($2::bigint[])
         RETURNING j.id",
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
        r#"WITH gone AS (
             DELETE FROM pgqrs.jobs j
             WHERE j.id = ANY($1::bigint[]) AND j.lease_token = ANY($2::bigint[])
             RETURNING j.id, j.queue_id, j.payload, j.priority, j.attempts, j.enqueued_at
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
        "UPDATE pgqrs.jobs j
         SET lease_token = NULL, lease_expires_at = NULL, worker_id = NULL, attempts = j.attempts - 1
         WHERE j.id = ANY($1::bigint[]) AND j.lease_token = ANY($2::bigint[])
         RETURNING j.id",
        ids,
        tokens
    )
    .fetch_all(db)
    .await
}

/// Moves a held job's lease end to now + `lease_secs`; `None` when the lease is not held.
pub(crate) async fn job_extend_lease<'c>(
    db: impl PgExecutor<'c>,
    id: i64,
    token: i64,
    lease_secs: f64,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar!(
        r#"UPDATE pgqrs.jobs
           SET lease_expires_at = now() + make_interval(secs => $3)
           WHERE id = $1 AND lease_token = $2
           RETURNING lease_expires_at AS "lease_expires_at!""#,
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
        r#"WITH target AS (
             SELECT j.id, t.delay_secs, t.error, j.attempts >= q.max_attempts AS exhausted
             FROM pgqrs.jobs j
             JOIN unnest($1::bigint[], $2::bigint[], $3::float8[], $4::text[])
                  AS t(id, token, delay_secs, error) ON t.id = j.id AND t.token = j.lease_token
             JOIN pgqrs.queues q ON q.id = j.queue_id
             WHERE j.id = ANY($1::bigint[])
             FOR UPDATE OF j
           ),
           retried AS (
             UPDATE pgqrs.jobs j
             SET lease_token = NULL, lease_expires_at = NULL, worker_id = NULL,
                 last_error = t.error, run_at = now() + make_interval(secs => t.delay_secs)
             FROM target t
             WHERE j.id = t.id AND NOT t.exhausted
             RETURNING j.id, j.run_at
           ),
           gone AS (
             DELETE FROM pgqrs.jobs j
             USING target t
             WHERE j.id = t.id AND t.exhausted
             RETURNING j.id, j.queue_id, j.payload, j.priority, j.attempts, j.enqueued_at,
                       t.error
           ),
           buried AS (
             INSERT INTO pgqrs.dead_letters (id, queue_id, payload, priority, attempts, enqueued_at, reason)
             SELECT id, queue_id, payload, priority, attempts, enqueued_at,
                    coalesce(error, 'nacked') || ' (after ' || attempts || ' deliveries, the queue''s max_attempts)'
             FROM gone
             RETURNING id
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

/// Looks a job up by id in the hot table, the archive and the dead letters.
pub(crate) async fn job_get<'c>(db: impl PgExecutor<'c>, id: i64) -> sqlx::Result<Option<JobRow>> {
    sqlx::query_as!(
        JobRow,
        r#"SELECT j.id AS "id!", q.name AS "queue!",
                  CASE WHEN j.lease_token IS NOT NULL THEN 'leased'
                       WHEN j.run_at > now() THEN 'delayed'
                       ELSE 'ready' END AS "state!",
                  j.payload AS "payload!", j.priority AS "priority!", j.attempts AS "attempts!",
                  j.enqueued_at AS "enqueued_at!", j.run_at AS "run_at?",
                  j.lease_expires_at AS "lease_expires_at?", j.worker_id AS "worker_id?",
                  NULL::timestamptz AS "finished_at?", NULL::text AS "outcome?",
                  j.last_error AS "last_error?"
           FROM pgqrs.jobs j JOIN pgqrs.queues q ON q.id = j.queue_id
           WHERE j.id = $1
           UNION ALL
           SELECT a.id, q.name, 'archived', a.payload, a.priority, a.attempts, a.enqueued_at,
                  NULL, NULL, NULL, a.archived_at, a.outcome, NULL
           FROM pgqrs.archive a JOIN pgqrs.queues q ON q.id = a.queue_id
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
                    CASE WHEN j.lease_token IS NOT NULL THEN 'leased'
                         WHEN j.run_at > now() THEN 'delayed'
                         ELSE 'ready' END AS state
             FROM pgqrs.jobs j WHERE j.id = $1
             FOR UPDATE
           ),
           hurried AS (
             UPDATE pgqrs.jobs j SET run_at = now()
             FROM waiting w
             WHERE j.id = w.id AND w.state = 'delayed'
             RETURNING j.id
           ),
           from_dead AS (
             DELETE FROM pgqrs.dead_letters d
             WHERE d.id = $1 AND EXISTS (SELECT 1 FROM pgqrs.queues q WHERE q.id = d.queue_id)
             RETURNING d.id, d.queue_id, d.payload, d.priority, d.enqueued_at, 'dead' AS state
           ),
           from_archive AS (
             DELETE FROM pgqrs.archive a
             WHERE a.id = $1 AND EXISTS (SELECT 1 FROM pgqrs.queues q WHERE q.id = a.queue_id)
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
/// cancelled, a `leased` one is left to its holder; `None` when there is no such job.
pub(crate) async fn job_cancel<'c>(
    db: impl PgExecutor<'c>,
    id: i64,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        r#"WITH target AS (
             SELECT j.id,
                    CASE WHEN j.lease_token IS NOT NULL THEN 'leased'
                         WHEN j.run_at > now() THEN 'delayed'
                         ELSE 'ready' END AS state
             FROM pgqrs.jobs j WHERE j.id = $1
             FOR UPDATE
           ),
           gone AS (
             DELETE FROM pgqrs.jobs j
             USING target t
             WHERE j.id = t.id AND t.state <> 'leased'
             RETURNING j.id, j.queue_id, j.payload, j.priority, j.attempts, j.enqueued_at
           ),
           archived AS (
             INSERT INTO pgqrs.archive (id, queue_id, payload, priority, attempts, enqueued_at, outcome)
             SELECT id, queue_id, payload, priority, attempts, enqueued_at, 'cancelled' FROM gone
           )
           SELECT t.state AS "state!" FROM target t
           UNION ALL
           SELECT 'archived' FROM pgqrs.archive a WHERE a.id = $1
           UNION ALL
           SELECT 'dead' FROM pgqrs.dead_letters d WHERE d.id = $1
           LIMIT 1"#,
        id
    )
    .fetch_optional(db)
    .await
}
