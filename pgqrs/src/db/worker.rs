//! `pgqrs.workers`: the registry of running workers and their heartbeats.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

/// A row of `pgqrs.workers`.
#[derive(Debug, Clone)]
pub(crate) struct WorkerRow {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) pid: i32,
    pub(crate) queues: Vec<String>,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) heartbeat_at: DateTime<Utc>,
}

/// What one heartbeat found.
#[derive(Debug)]
pub(crate) struct HeartbeatRow {
    /// The worker's row still exists (it was not reaped while this process stalled).
    pub(crate) registered: bool,
    /// The jobs whose lease was extended: every held job that nobody took over.
    pub(crate) extended: Vec<i64>,
}

/// Registers a running worker; returns its id. Names need not be unique: a worker that
/// restarts after a crash registers a new row and the stale one is reaped.
pub(crate) async fn worker_register<'c>(
    db: impl PgExecutor<'c>,
    name: &str,
    pid: i32,
    queues: &[String],
) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        "INSERT INTO pgqrs.workers (name, pid, queues) VALUES ($1, $2, $3) RETURNING id",
        name,
        pid,
        queues
    )
    .fetch_one(db)
    .await
}

/// One heartbeat: marks the worker alive, extends the leases it holds (fenced by token) to
/// now + `lease_secs`, and reaps workers silent for longer than `reap_after_secs`.
pub(crate) async fn worker_heartbeat<'c>(
    db: impl PgExecutor<'c>,
    worker_id: i64,
    ids: &[i64],
    tokens: &[i64],
    lease_secs: f64,
    reap_after_secs: f64,
) -> sqlx::Result<HeartbeatRow> {
    sqlx::query_as!(
        HeartbeatRow,
        r#"WITH beat AS (
             UPDATE pgqrs.workers SET heartbeat_at = now() WHERE id = $1 RETURNING id
           ),
           reaped AS (
             DELETE FROM pgqrs.workers
             WHERE heartbeat_at < now() - make_interval(secs => $5) AND id <> $1
           ),
           extended AS (
             UPDATE pgqrs.leases l
             SET expires_at = now() + make_interval(secs => $4)
             WHERE l.token = ANY($3::bigint[]) AND l.ids && $2::bigint[]
             RETURNING l.ids
           )
           SELECT EXISTS (SELECT 1 FROM beat) AS "registered!",
                  ARRAY(SELECT x FROM extended e, unnest(e.ids) x WHERE x = ANY($2::bigint[]))
                      AS "extended!""#,
        worker_id,
        ids,
        tokens,
        lease_secs,
        reap_after_secs
    )
    .fetch_one(db)
    .await
}

/// Removes a worker that is stopping.
pub(crate) async fn worker_deregister<'c>(
    db: impl PgExecutor<'c>,
    worker_id: i64,
) -> sqlx::Result<()> {
    sqlx::query!("DELETE FROM pgqrs.workers WHERE id = $1", worker_id)
        .execute(db)
        .await?;
    Ok(())
}

/// Registered workers, most recently started first.
pub(crate) async fn worker_list<'c>(db: impl PgExecutor<'c>) -> sqlx::Result<Vec<WorkerRow>> {
    sqlx::query_as!(
        WorkerRow,
        "SELECT id, name, pid, queues, started_at, heartbeat_at
         FROM pgqrs.workers ORDER BY started_at DESC, id DESC"
    )
    .fetch_all(db)
    .await
}

/// Registers a worker again under its old id, after a stall got its row reaped.
pub(crate) async fn worker_reregister<'c>(
    db: impl PgExecutor<'c>,
    worker_id: i64,
    name: &str,
    pid: i32,
    queues: &[String],
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO pgqrs.workers (id, name, pid, queues) OVERRIDING SYSTEM VALUE
         VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()",
        worker_id,
        name,
        pid,
        queues
    )
    .execute(db)
    .await?;
    Ok(())
}
