//! Periodic jobs from cron expressions: one enqueue per tick across all workers.

use std::fmt;
use std::time::Duration;

use crate::db::Db;
use chrono::Utc;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use tokio_util::sync::CancellationToken;

use crate::db;
use crate::{Error, JobType, QueueName, Result};

/// A job enqueued on a cron schedule. Every worker that runs the schedule wakes at each
/// tick; the first to reach the database enqueues the job and records the tick, the others
/// see it recorded and do nothing. Ticks missed while no worker ran are not made up.
///
/// Expressions have five fields (minute granularity) or six (with seconds first), as in
/// `"*/5 * * * *"` or `"*/10 * * * * *"`; the time zone is UTC.
///
/// ```
/// use pgqrs::Periodic;
///
/// let cleanup = Periodic::new("hourly-cleanup", "0 * * * *", "maintenance", &serde_json::json!({"kind": "cleanup"}))?;
/// assert_eq!(cleanup.queue(), "maintenance");
/// assert!(Periodic::new("bad", "every tuesday", "maintenance", &serde_json::json!({})).is_err());
/// # Ok::<(), pgqrs::Error>(())
/// ```
#[derive(Clone)]
pub struct Periodic {
    name: String,
    expression: String,
    schedule: Cron,
    queue: String,
    payload: String,
    priority: i16,
}

impl Periodic {
    /// A schedule named `name` (unique across the database: it keys the tick record)
    /// enqueueing `payload` into `queue`.
    ///
    /// ```
    /// let every_minute = pgqrs::Periodic::new("ping", "* * * * *", "tasks", &serde_json::json!("ping"))?;
    /// # Ok::<(), pgqrs::Error>(())
    /// ```
    pub fn new(name: &str, cron: &str, queue: &str, payload: &serde_json::Value) -> Result<Self> {
        Self::build(
            name,
            cron,
            queue,
            serde_json::to_string(payload).map_err(Error::Encode)?,
        )
    }

    /// A schedule enqueueing the typed `payload` into its queue.
    ///
    /// ```
    /// #[derive(serde::Serialize, serde::Deserialize, pgqrs::Job)]
    /// #[pgqrs(queue = "reports")]
    /// struct DailyReport { day_offset: i32 }
    ///
    /// let daily = pgqrs::Periodic::job("daily-report", "0 6 * * *", &DailyReport { day_offset: -1 })?;
    /// assert_eq!(daily.queue(), "reports");
    /// # Ok::<(), pgqrs::Error>(())
    /// ```
    pub fn job<T: JobType>(name: &str, cron: &str, payload: &T) -> Result<Self> {
        Self::build(
            name,
            cron,
            T::QUEUE,
            serde_json::to_string(payload).map_err(Error::Encode)?,
        )
    }

    /// Sets the priority of the enqueued jobs (default 0).
    ///
    /// ```
    /// let urgent = pgqrs::Periodic::new("ping", "* * * * *", "tasks", &serde_json::json!(1))?.priority(5);
    /// # Ok::<(), pgqrs::Error>(())
    /// ```
    pub fn priority(mut self, priority: i16) -> Self {
        self.priority = priority;
        self
    }

    /// The queue the jobs go to.
    ///
    /// ```
    /// let ping = pgqrs::Periodic::new("ping", "* * * * *", "tasks", &serde_json::json!(1))?;
    /// assert_eq!(ping.queue(), "tasks");
    /// # Ok::<(), pgqrs::Error>(())
    /// ```
    pub fn queue(&self) -> &str {
        &self.queue
    }

    fn build(name: &str, cron: &str, queue: &str, payload: String) -> Result<Self> {
        QueueName::new(name).map_err(|_| {
            Error::InvalidArgument(format!(
                "invalid periodic schedule name {:?}: use 1 to 63 characters from a-z, 0-9, '_' and '-'",
                name.chars().take(64).collect::<String>()
            ))
        })?;
        QueueName::new(queue)?;
        let schedule = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(cron)
            .map_err(|err| {
                Error::InvalidArgument(format!("invalid cron expression {cron:?}: {err}"))
            })?;
        Ok(Periodic {
            name: name.to_owned(),
            expression: cron.to_owned(),
            schedule,
            queue: queue.to_owned(),
            payload,
            priority: 0,
        })
    }
}

impl fmt::Debug for Periodic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Periodic")
            .field("name", &self.name)
            .field("cron", &self.expression)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

/// Sleeps to each tick and tries to enqueue it.
pub(super) async fn run(pool: Db, schedule: Periodic, queue_id: i32, stop: CancellationToken) {
    loop {
        let now = Utc::now();
        let tick = match schedule.schedule.find_next_occurrence(&now, false) {
            Ok(tick) => tick,
            Err(err) => {
                tracing::error!(schedule = %schedule.name, error = %err, "no next tick; schedule stopped");
                return;
            }
        };
        let wait = (tick - now).to_std().unwrap_or_default();
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        for attempt in 0..3u32 {
            match db::periodic::periodic_enqueue_tick(
                &pool,
                &schedule.name,
                tick,
                queue_id,
                &schedule.payload,
                schedule.priority,
            )
            .await
            {
                Ok(Some(job_id)) => {
                    tracing::debug!(schedule = %schedule.name, %tick, job_id, "periodic job enqueued");
                    break;
                }
                Ok(None) => break, // another worker enqueued this tick
                Err(err) => {
                    tracing::warn!(schedule = %schedule.name, %tick, error = %err, "periodic enqueue failed");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
            }
        }
    }
}
