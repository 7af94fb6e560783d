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

/// An inserted job.
#[derive(Debug)]
pub(crate) struct InsertedRow {
    pub(crate) id: i64,
    pub(crate) run_at: DateTime<Utc>,
}

/// What a retry did to one job.
#[derive(Debug)]
pub(crate) struct RetriedRow {
    pub(crate) run_at: Option<DateTime<Utc>>,
    pub(crate) dead: bool,
}

/// Inserts JSON payloads (as text) into a queue in one statement; rows come back in input order.
pub(crate) async fn job_insert_batch<'c>(
    db: impl PgExecutor<'c>,
    queue_id: i32,
    payloads: &[String],
    priority: i16,
    run_at: Option<DateTime<Utc>>,
    delay_secs: f64,
) -> sqlx::Result<Vec<InsertedRow>> {
    let mut rows = sqlx::query_as!(
        InsertedRow,
        "INSERT INTO pgqrs.jobs (queue_id, payload, priority, run_at)
         SELECT $1, t.payload::jsonb, $3, coalesce($4, now()) + make_interval(secs => $5)
         FROM unnest($2::text[]) WITH ORDINALITY AS t(payload, ord)
         ORDER BY t.ord
         RETURNING id, run_at",
        queue_id,
        payloads,
        priority,
        run_at,
        delay_secs
    )
    .fetch_all(db)
    .await?;
    // Identity values are drawn in insertion order, which follows `ord`.
    rows.sort_unstable_by_key(|row| row.id);
    Ok(rows)
}

/// Claims up to `limit` runnable jobs for `lease_secs` (see `sql/job_claim_batch.sql`).
pub(crate) async fn job_claim_batch<'c>(
    db: impl PgExecutor<'c>,
    queue_id: i32,
    limit: i64,
    lease_secs: f64,
) -> sqlx::Result<Vec<ClaimedRow>> {
    let mut rows = sqlx::query_file_as!(
        ClaimedRow,
        "src/db/sql/job_claim_batch.sql",
        queue_id,
        limit,
        lease_secs
    )
    .fetch_all(db)
    .await?;
    rows.sort_unstable_by_key(|row| (std::cmp::Reverse(row.priority), row.id));
    Ok(rows)
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
             USING unnest($1::bigint[], $2::bigint[]) AS t(id, token)
             WHERE j.id = t.id AND j.lease_token = t.token
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
         USING unnest($1::bigint[], $2::bigint[]) AS t(id, token)
         WHERE j.id = t.id AND j.lease_token = t.token
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
             USING unnest($1::bigint[], $2::bigint[]) AS t(id, token)
             WHERE j.id = t.id AND j.lease_token = t.token
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
         SET lease_token = NULL, lease_expires_at = NULL, attempts = j.attempts - 1
         FROM unnest($1::bigint[], $2::bigint[]) AS t(id, token)
         WHERE j.id = t.id AND j.lease_token = t.token
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

/// Ends a held job's delivery as failed: runnable again after `delay_secs`, or to the dead
/// letters when it has had `max_attempts` deliveries. `None` when the lease is not held.
pub(crate) async fn job_retry<'c>(
    db: impl PgExecutor<'c>,
    id: i64,
    token: i64,
    delay_secs: f64,
    error: Option<&str>,
) -> sqlx::Result<Option<RetriedRow>> {
    sqlx::query_as!(
        RetriedRow,
        r#"WITH target AS (
             SELECT j.id, j.attempts >= q.max_attempts AS exhausted
             FROM pgqrs.jobs j JOIN pgqrs.queues q ON q.id = j.queue_id
             WHERE j.id = $1 AND j.lease_token = $2
             FOR UPDATE OF j
           ),
           retried AS (
             UPDATE pgqrs.jobs j
             SET lease_token = NULL, lease_expires_at = NULL, last_error = $4,
                 run_at = now() + make_interval(secs => $3)
             FROM target t
             WHERE j.id = t.id AND NOT t.exhausted
             RETURNING j.run_at
           ),
           gone AS (
             DELETE FROM pgqrs.jobs j
             USING target t
             WHERE j.id = t.id AND t.exhausted
             RETURNING j.id, j.queue_id, j.payload, j.priority, j.attempts, j.enqueued_at
           ),
           buried AS (
             INSERT INTO pgqrs.dead_letters (id, queue_id, payload, priority, attempts, enqueued_at, reason)
             SELECT id, queue_id, payload, priority, attempts, enqueued_at,
                    coalesce($4, 'nacked') || ' (after ' || attempts || ' deliveries, the queue''s max_attempts)'
             FROM gone
             RETURNING id
           )
           SELECT run_at AS "run_at?", false AS "dead!" FROM retried
           UNION ALL
           SELECT NULL, true FROM buried"#,
        id,
        token,
        delay_secs,
        error
    )
    .fetch_optional(db)
    .await
}
