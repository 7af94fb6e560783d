//! Queue descriptions returned by [`Admin`](crate::Admin), and queue lookup for producers
//! and consumers.

use std::time::Duration;

use crate::db::Db;
use chrono::{DateTime, Utc};

use crate::db::{dead_letter::DeadLetterRow, queue as db};
use crate::{Config, Error, QueueName, Result};

/// Default number of deliveries before a job goes to the dead letters.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 25;

/// A queue as stored in `pgqrs.queues`.
///
/// ```no_run
/// # async fn demo(admin: pgqrs::Admin) -> pgqrs::Result<()> {
/// let queue = admin.create_queue("tasks").await?;
/// assert_eq!(queue.name.as_str(), "tasks");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueInfo {
    /// Internal id.
    pub id: i32,
    /// The queue's name.
    pub name: QueueName,
    /// Deliveries a job gets before it moves to the dead letters.
    pub max_attempts: i32,
    /// Paused queues yield no jobs.
    pub paused: bool,
    /// Most jobs of this queue leased at once across all consumers (`None`: no cap).
    pub global_concurrency: Option<i32>,
    /// When the queue was created.
    pub created_at: DateTime<Utc>,
}

/// Settings of a new queue.
///
/// ```
/// let options = pgqrs::QueueOptions::builder().max_attempts(3).build();
/// assert_eq!(options.max_attempts, 3);
/// assert_eq!(pgqrs::QueueOptions::default().max_attempts, pgqrs::DEFAULT_MAX_ATTEMPTS);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, typed_builder::TypedBuilder)]
#[non_exhaustive]
pub struct QueueOptions {
    /// Deliveries a job gets before it moves to the dead letters (at least 1).
    #[builder(default = DEFAULT_MAX_ATTEMPTS)]
    pub max_attempts: i32,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions::builder().build()
    }
}

/// A snapshot of one queue's backlog.
///
/// ```no_run
/// # async fn demo(admin: pgqrs::Admin) -> pgqrs::Result<()> {
/// let stats = admin.queue_stats("tasks").await?;
/// println!("{} ready, {} leased, oldest waits {:?}", stats.ready, stats.leased, stats.oldest_ready_age);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// The queue.
    pub queue: QueueName,
    /// Runnable now, not leased.
    pub ready: i64,
    /// Held by a consumer (including leases that expired but were not reclaimed yet).
    pub leased: i64,
    /// Waiting for their `run_at`.
    pub delayed: i64,
    /// In the dead letters.
    pub dead: i64,
    /// How long the oldest ready job has waited since it was enqueued.
    pub oldest_ready_age: Option<Duration>,
}

/// A job that failed for good, with the reason.
///
/// ```no_run
/// # async fn demo(admin: pgqrs::Admin) -> pgqrs::Result<()> {
/// for dead in admin.dead_letters("tasks", 100).await? {
///     println!("job {} after {} deliveries: {}", dead.id, dead.attempts, dead.reason);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// The job's id (kept from the queue).
    pub id: i64,
    /// The payload as stored.
    pub payload: serde_json::Value,
    /// Its priority.
    pub priority: i16,
    /// Deliveries it had.
    pub attempts: i32,
    /// When it was first enqueued.
    pub enqueued_at: DateTime<Utc>,
    /// When it was moved here.
    pub failed_at: DateTime<Utc>,
    /// Why.
    pub reason: String,
}

impl From<db::QueueRow> for QueueInfo {
    fn from(row: db::QueueRow) -> Self {
        QueueInfo {
            id: row.id,
            // The CHECK constraint on `pgqrs.queues.name` enforces the same rule.
            name: QueueName::trusted(row.name),
            max_attempts: row.max_attempts,
            paused: row.paused,
            global_concurrency: row.global_concurrency,
            created_at: row.created_at,
        }
    }
}

impl QueueStats {
    pub(crate) fn from_row(queue: QueueName, row: db::QueueStatsRow) -> Self {
        QueueStats {
            queue,
            ready: row.ready,
            leased: row.leased,
            delayed: row.delayed,
            dead: row.dead,
            oldest_ready_age: row
                .oldest_ready_at
                .map(|at| (row.now - at).to_std().unwrap_or_default()),
        }
    }
}

impl From<DeadLetterRow> for DeadLetter {
    fn from(row: DeadLetterRow) -> Self {
        DeadLetter {
            id: row.id,
            payload: row.payload,
            priority: row.priority,
            attempts: row.attempts,
            enqueued_at: row.enqueued_at,
            failed_at: row.failed_at,
            reason: row.reason,
        }
    }
}

/// An existing queue, found by name, and the pool to reach it.
#[derive(Debug, Clone)]
pub(crate) struct QueueHandle {
    pub(crate) pool: Db,
    pub(crate) info: QueueInfo,
}

impl QueueHandle {
    /// Validates the name, connects, and looks the queue up.
    pub(crate) async fn open(config: &Config, name: &str) -> Result<Self> {
        let name = QueueName::new(name)?;
        let pool = config.db().await?;
        let row =
            db::queue_get(&pool, name.as_str())
                .await?
                .ok_or_else(|| Error::QueueNotFound {
                    queue: name.to_string(),
                })?;
        Ok(QueueHandle {
            pool,
            info: row.into(),
        })
    }
}
