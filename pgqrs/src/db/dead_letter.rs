//! `pgqrs.dead_letters`: listing and redriving jobs that failed for good.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

/// A row of `pgqrs.dead_letters`.
#[derive(Debug, Clone)]
pub(crate) struct DeadLetterRow {
    pub(crate) id: i64,
    pub(crate) payload: serde_json::Value,
    pub(crate) priority: i16,
    pub(crate) attempts: i32,
    pub(crate) enqueued_at: DateTime<Utc>,
    pub(crate) failed_at: DateTime<Utc>,
    pub(crate) reason: String,
}

/// Dead letters of a queue by job id, starting after id `after` (keyset paging).
pub(crate) async fn dead_letter_list<'c>(
    db: impl PgExecutor<'c>,
    queue_id: i32,
    after: i64,
    limit: i64,
) -> sqlx::Result<Vec<DeadLetterRow>> {
    sqlx::query_as!(
        DeadLetterRow,
        "SELECT id, payload, priority, attempts, enqueued_at, failed_at, reason
         FROM pgqrs.dead_letters
         WHERE queue_id = $1 AND id > $2
         ORDER BY id
         LIMIT $3",
        queue_id,
        after,
        limit
    )
    .fetch_all(db)
    .await
}

/// Moves dead letters back into the queue as fresh jobs (same id, attempts reset).
/// `ids = None` redrives all of the queue's dead letters. Returns the redriven ids.
pub(crate) async fn dead_letter_redrive<'c>(
    db: impl PgExecutor<'c>,
    queue_id: i32,
    ids: Option<&[i64]>,
) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar!(
        r#"WITH revived AS (
             DELETE FROM pgqrs.dead_letters d
             WHERE d.queue_id = $1 AND ($2::bigint[] IS NULL OR d.id = ANY($2))
             RETURNING d.id, d.queue_id, d.payload, d.priority, d.enqueued_at
           )
           INSERT INTO pgqrs.jobs (id, queue_id, payload, priority, enqueued_at)
           SELECT id, queue_id, payload, priority, enqueued_at FROM revived
           ORDER BY id
           RETURNING id"#,
        queue_id,
        ids as Option<&[i64]>
    )
    .fetch_all(db)
    .await
}
