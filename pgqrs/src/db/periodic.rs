//! `pgqrs.periodic_ticks`: one enqueue per tick of a periodic schedule.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

/// Enqueues the job of schedule `name` for `tick` unless that tick (or a later one) was
/// already enqueued, by this process or any other. Returns the new job's id if this call won.
pub(crate) async fn periodic_enqueue_tick<'c>(
    db: impl PgExecutor<'c>,
    name: &str,
    tick: DateTime<Utc>,
    queue_id: i32,
    payload: &str,
    priority: i16,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar!(
        r#"WITH won AS (
             INSERT INTO pgqrs.periodic_ticks AS p (name, last_tick) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET last_tick = EXCLUDED.last_tick
             WHERE p.last_tick < EXCLUDED.last_tick
             RETURNING name
           ),
           inserted AS (
             INSERT INTO pgqrs.jobs (queue_id, payload, priority)
             SELECT $3, $4::text::jsonb, $5 FROM won
             WHERE EXISTS (SELECT 1 FROM pgqrs.queues q WHERE q.id = $3)
             RETURNING id
           ),
           wake AS (
             SELECT pg_notify('pgqrs_jobs', $3::integer::text) WHERE EXISTS (SELECT 1 FROM inserted)
           )
           SELECT i.id FROM inserted i LEFT JOIN wake ON true"#,
        name,
        tick,
        queue_id,
        payload,
        priority
    )
    .fetch_optional(db)
    .await
}
