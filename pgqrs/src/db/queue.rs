//! `pgqrs.queues`: creation, lookup, statistics, purge and deletion.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

/// A row of `pgqrs.queues`.
#[derive(Debug, Clone)]
pub(crate) struct QueueRow {
    pub(crate) id: i32,
    pub(crate) name: String,
    pub(crate) max_attempts: i32,
    pub(crate) paused: bool,
    pub(crate) global_concurrency: Option<i32>,
    pub(crate) created_at: DateTime<Utc>,
}

/// Per-queue counts, computed in one pass over the queue's jobs.
#[derive(Debug, Clone)]
pub(crate) struct QueueStatsRow {
    pub(crate) ready: i64,
    pub(crate) leased: i64,
    pub(crate) delayed: i64,
    pub(crate) dead: i64,
    pub(crate) oldest_ready_at: Option<DateTime<Utc>>,
    pub(crate) now: DateTime<Utc>,
}

/// Inserts the queue unless one of that name exists; returns the row only when inserted.
pub(crate) async fn queue_insert<'c>(
    db: impl PgExecutor<'c>,
    name: &str,
    max_attempts: i32,
) -> sqlx::Result<Option<QueueRow>> {
    sqlx::query_as!(
        QueueRow,
        "INSERT INTO pgqrs.queues (name, max_attempts) VALUES ($1, $2)
         ON CONFLICT (name) DO NOTHING
         RETURNING id, name, max_attempts, paused, global_concurrency, created_at",
        name,
        max_attempts
    )
    .fetch_optional(db)
    .await
}

/// Looks a queue up by name.
pub(crate) async fn queue_get<'c>(
    db: impl PgExecutor<'c>,
    name: &str,
) -> sqlx::Result<Option<QueueRow>> {
    sqlx::query_as!(
        QueueRow,
        "SELECT id, name, max_attempts, paused, global_concurrency, created_at FROM pgqrs.queues WHERE name = $1",
        name
    )
    .fetch_optional(db)
    .await
}

/// All queues, by name.
pub(crate) async fn queue_list<'c>(db: impl PgExecutor<'c>) -> sqlx::Result<Vec<QueueRow>> {
    sqlx::query_as!(
        QueueRow,
        "SELECT id, name, max_attempts, paused, global_concurrency, created_at FROM pgqrs.queues ORDER BY name"
    )
    .fetch_all(db)
    .await
}

/// Ready, leased, delayed and dead counts plus the enqueue time of the oldest ready job.
pub(crate) async fn queue_stats<'c>(
    db: impl PgExecutor<'c>,
    queue_id: i32,
) -> sqlx::Result<QueueStatsRow> {
    sqlx::query_as!(
        QueueStatsRow,
        r#"SELECT
             count(*) FILTER (WHERE lease_token IS NULL AND run_at <= now()) AS "ready!",
             (SELECT coalesce(sum(cardinality(l.ids)), 0) FROM pgqrs.leases l WHERE l.queue_id = $1)::bigint
                 AS "leased!",
             count(*) FILTER (WHERE lease_token IS NULL AND run_at > now()) AS "delayed!",
             (SELECT count(*) FROM pgqrs.dead_letters d WHERE d.queue_id = $1) AS "dead!",
             min(enqueued_at) FILTER (WHERE lease_token IS NULL AND run_at <= now()) AS oldest_ready_at,
             now() AS "now!"
           FROM pgqrs.jobs
           WHERE queue_id = $1"#,
        queue_id
    )
    .fetch_one(db)
    .await
}

/// One queue's backlog for metrics (see `sql/queue_depths.sql`).
#[derive(Debug, Clone)]
pub(crate) struct QueueDepthRow {
    pub(crate) name: String,
    pub(crate) available: i64,
    pub(crate) scheduled: i64,
    pub(crate) leased: i64,
    pub(crate) dead: i64,
    pub(crate) estimated: bool,
    pub(crate) oldest_available_at: Option<DateTime<Utc>>,
    pub(crate) now: DateTime<Utc>,
}

/// The backlog of every queue: counts exact up to `exact_up_to` per queue and state,
/// estimated from a block sample of about `sample_rows` rows above; with JIT off, in a
/// transaction of its own (`SET LOCAL`, safe behind a pooler).
pub(crate) async fn queue_depths(
    pool: &crate::db::Db,
    exact_up_to: i64,
    sample_rows: f64,
) -> sqlx::Result<Vec<QueueDepthRow>> {
    let mut tx = pool.begin().await?;
    sqlx::query!("SET LOCAL jit = off")
        .execute(&mut *tx)
        .await?;
    let rows = sqlx::query_file_as!(
        QueueDepthRow,
        "src/db/sql/queue_depths.sql",
        exact_up_to,
        sample_rows
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows)
}

/// Pauses or resumes a queue; `false` when it does not exist.
pub(crate) async fn queue_set_paused<'c>(
    db: impl PgExecutor<'c>,
    queue_id: i32,
    paused: bool,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE pgqrs.queues SET paused = $2 WHERE id = $1",
        queue_id,
        paused
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets or clears the cap on jobs of the queue leased at once across all workers.
pub(crate) async fn queue_set_global_concurrency<'c>(
    db: impl PgExecutor<'c>,
    queue_id: i32,
    limit: Option<i32>,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE pgqrs.queues SET global_concurrency = $2 WHERE id = $1",
        queue_id,
        limit
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Wakes the workers listening for the queue (delivered when the transaction commits).
pub(crate) async fn queue_wake<'c>(db: impl PgExecutor<'c>, queue_id: i32) -> sqlx::Result<()> {
    sqlx::query_scalar!(
        r#"SELECT 1 AS "woken!" FROM pg_notify('pgqrs_jobs', $1::integer::text)"#,
        queue_id
    )
    .fetch_one(db)
    .await?;
    Ok(())
}

/// Serializes claims on a capped queue until the transaction ends, so that each claim
/// counts the leases of the claims before it.
pub(crate) async fn queue_lock_claims(conn: &mut PgConnection, queue_id: i32) -> sqlx::Result<()> {
    sqlx::query_scalar!(
        r#"SELECT 1 AS "locked!" FROM pg_advisory_xact_lock($1, $2)"#,
        CLAIM_LOCK_SPACE,
        queue_id
    )
    .fetch_one(conn)
    .await?;
    Ok(())
}

/// First key of the two-key advisory locks pgqrs takes on queues ('pgqr').
const CLAIM_LOCK_SPACE: i32 = 0x7067_7172;

/// Deletes every waiting and leased job of the queue (their holders lose their leases);
/// history and dead letters stay. Returns how many jobs went.
pub(crate) async fn queue_purge<'c>(db: impl PgExecutor<'c>, queue_id: i32) -> sqlx::Result<u64> {
    let done = sqlx::query_scalar!(
        r#"WITH waiting AS (
             DELETE FROM pgqrs.jobs WHERE queue_id = $1 RETURNING id
           ),
           leases AS (
             DELETE FROM pgqrs.leases WHERE queue_id = $1 RETURNING token, ids
           ),
           in_flight AS (
             DELETE FROM pgqrs.archive a USING leases l
             WHERE a.id = ANY (l.ids) AND a.lease_token = l.token
             RETURNING a.id
           ),
           unkeyed AS (
             DELETE FROM pgqrs.job_keys WHERE queue_id = $1
           )
           SELECT (SELECT count(*) FROM waiting) + (SELECT count(*) FROM in_flight) AS "n!""#,
        queue_id
    )
    .fetch_one(db)
    .await?;
    Ok(u64::try_from(done).unwrap_or(0))
}

/// Deletes the queue with its jobs and dead letters. Run it in a transaction: it locks the
/// jobs table against concurrent writers until the end, so that no enqueue that saw the
/// queue commits a job after it is gone.
pub(crate) async fn queue_delete(conn: &mut PgConnection, queue_id: i32) -> sqlx::Result<bool> {
    sqlx::query!("LOCK TABLE pgqrs.jobs IN SHARE MODE")
        .execute(&mut *conn)
        .await?;
    sqlx::query!("DELETE FROM pgqrs.jobs WHERE queue_id = $1", queue_id)
        .execute(&mut *conn)
        .await?;
    // Jobs in flight stay in the archive until `queue_delete_archive`; their leases and
    // unique keys go now.
    sqlx::query!(
        "WITH leases AS (DELETE FROM pgqrs.leases WHERE queue_id = $1)
         DELETE FROM pgqrs.job_keys WHERE queue_id = $1",
        queue_id
    )
    .execute(&mut *conn)
    .await?;
    let done = sqlx::query!("DELETE FROM pgqrs.queues WHERE id = $1", queue_id)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes the archived jobs of a deleted queue (a scan of the archive: run it outside the
/// deletion's transaction).
pub(crate) async fn queue_delete_archive<'c>(
    db: impl PgExecutor<'c>,
    queue_id: i32,
) -> sqlx::Result<u64> {
    let done = sqlx::query!("DELETE FROM pgqrs.archive WHERE queue_id = $1", queue_id)
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}
