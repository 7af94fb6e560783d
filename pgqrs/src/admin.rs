//! Installation, verification and queue management.

use crate::db::Db;

mod jobs;
mod runs;
mod schema;
mod version;

pub use jobs::{JobInfo, JobState};
pub use runs::{RunFilter, RunInfo, StepInfo};

use crate::db;
use crate::queue::QueueHandle;
use crate::{
    Config, DeadLetter, Error, QueueInfo, QueueName, QueueOptions, QueueStats, Result, WorkerInfo,
};

/// Installs the schema and manages queues.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use pgqrs::{Admin, Config};
///
/// let config = Config::from_dsn("postgresql://postgres@localhost/mydb")?;
/// let admin = Admin::new(&config).await?;
/// admin.install().await?;
/// admin.create_queue("tasks").await?;
/// admin.verify().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Admin {
    config: Config,
    pool: Db,
}

impl Admin {
    /// Connects (through the config's shared pool). Does not require the schema.
    ///
    /// ```no_run
    /// # async fn demo(config: pgqrs::Config) -> pgqrs::Result<()> {
    /// let admin = pgqrs::Admin::new(&config).await?;
    /// # Ok(()) }
    /// ```
    pub async fn new(config: &Config) -> Result<Self> {
        Ok(Admin {
            pool: config.db().await?,
            config: config.clone(),
        })
    }

    /// The config this admin was made from.
    ///
    /// ```no_run
    /// # async fn demo(admin: pgqrs::Admin) {
    /// let producer_config = admin.config().clone();
    /// # }
    /// ```
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Creates a queue with default settings, or returns the existing one of that name.
    ///
    /// ```no_run
    /// # async fn demo(admin: pgqrs::Admin) -> pgqrs::Result<()> {
    /// let queue = admin.create_queue("tasks").await?;
    /// assert_eq!(admin.create_queue("tasks").await?.id, queue.id);
    /// # Ok(()) }
    /// ```
    pub async fn create_queue(&self, name: &str) -> Result<QueueInfo> {
        self.create_queue_with(name, QueueOptions::default()).await
    }

    /// Creates a queue with `options`, or returns the existing one of that name unchanged.
    ///
    /// ```no_run
    /// # async fn demo(admin: pgqrs::Admin) -> pgqrs::Result<()> {
    /// let options = pgqrs::QueueOptions::builder().max_attempts(3).build();
    /// let queue = admin.create_queue_with("fragile", options).await?;
    /// # Ok(()) }
    /// ```
    pub async fn create_queue_with(&self, name: &str, options: QueueOptions) -> Result<QueueInfo> {
        let name = QueueName::new(name)?;
        if options.max_attempts < 1 {
            return Err(Error::InvalidArgument(format!(
                "max_attempts must be at least 1, got {}",
                options.max_attempts
            )));
        }
        // A concurrent creator may win the insert after our statement's snapshot was taken;
        // then the row is visible to the next statement.
        for _ in 0..2 {
            if let Some(row) =
                db::queue::queue_insert(&self.pool, name.as_str(), options.max_attempts).await?
            {
                return Ok(row.into());
            }
            if let Some(row) = db::queue::queue_get(&self.pool, name.as_str()).await? {
                return Ok(row.into());
            }
        }
        Err(Error::QueueNotFound {
            queue: name.to_string(),
        })
    }

    /// All queues, by name.
    ///
    /// ```no_run
    /// # async fn demo(admin: pgqrs::Admin) -> pgqrs::Result<()> {
    /// for queue in admin.list_queues().await? {
    ///     println!("{}", queue.name);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list_queues(&self) -> Result<Vec<QueueInfo>> {
        let rows = db::queue::queue_list(&self.pool).await?;
        Ok(rows.into_iter().map(QueueInfo::from).collect())
    }

    /// Ready, leased, delayed and dead counts and the age of the oldest ready job.
    ///
    /// ```no_run
    /// # async fn demo(admin: pgqrs::Admin) -> pgqrs::Result<()> {
    /// let stats = admin.queue_stats("tasks").await?;
    /// # Ok(()) }
    /// ```
    pub async fn queue_stats(&self, name: &str) -> Result<QueueStats> {
        let queue = self.queue(name).await?;
        let row = db::queue::queue_stats(&self.pool, queue.id).await?;
        Ok(QueueStats::from_row(queue.name, row))
    }

    /// Deletes every waiting and leased job of the queue (holders then get
    /// [`Error::LeaseLost`]). The archive and dead letters stay. Returns the count.
    ///
    /// ```no_run
    /// # async fn demo(admin: pgqrs::Admin) -> pgqrs::Result<()> {
    /// let removed = admin.purge_queue("tasks").await?;
    /// # Ok(()) }
    /// ```
    pub async fn purge_queue(&self, name: &str) -> Result<u64> {
        let queue = self.queue(name).await?;
        Ok(db::queue::queue_purge(&self.pool, queue.id).await?)
    }

    /// Deletes the queue with its jobs, archive and dead letters.
    ///
    /// ```no_run
    /// # async fn demo(admin: pgqrs::Admin) -> pgqrs::Result<()> {
    /// admin.delete_queue("tasks").await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete_queue(&self, name: &str) -> Result<()> {
        let queue = self.queue(name).await?;
        let mut tx = self.pool.begin().await?;
        let deleted = db::queue::queue_delete(&mut tx, queue.id).await?;
        tx.commit().await?;
        if deleted {
            db::queue::queue_delete_archive(&self.pool, queue.id).await?;
            Ok(())
        } else {
            Err(Error::QueueNotFound {
                queue: queue.name.to_string(),
            })
        }
    }

    /// Pauses a queue: consumers and workers claim nothing from it until it is resumed.
    /// Jobs already leased run to completion; enqueueing still works.
    ///
    /// ```no_run
    /// # async fn demo(admin: pgqrs::Admin) -> pgqrs::Result<()> {
    /// admin.pause_queue("tasks").await?;
    /// # Ok(()) }
    /// ```
    pub async fn pause_queue(&self, name: &str) -> Result<()> {
        let queue = self.queue(name).await?;
        db::queue::queue_set_paused(&self.pool, queue.id, true).await?;
        Ok(())
    }

    /// Resumes a paused queue and wakes the workers listening for it.
    ///
    /// ```no_run
    /// # async fn demo(admin: pgqrs::Admin) -> pgqrs::Result<()> {
    /// admin.resume_queue("tasks").await?;
    /// # Ok(()) }
    /// ```
    pub async fn resume_queue(&self, name: &str) -> Result<()> {
        let queue = self.queue(name).await?;
        let mut tx = self.pool.begin().await?;
        db::queue::queue_set_paused(&mut *tx, queue.id, false).await?;
        db::queue::queue_wake(&mut *tx, queue.id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Caps how many jobs of the queue are leased at once across all consumers and workers
    /// (`None` removes the cap). Enforced in SQL: claims on a capped queue are serialized
    /// and count the live leases.
    ///
    /// ```no_run
    /// # async fn demo(admin: pgqrs::Admin) -> pgqrs::Result<()> {
    /// admin.set_global_concurrency("reports", Some(2)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_global_concurrency(&self, name: &str, limit: Option<i32>) -> Result<()> {
        if limit.is_some_and(|n| n < 1) {
            return Err(Error::InvalidArgument(
                "a global concurrency cap must be at least 1 (None removes it)".into(),
            ));
        }
        let queue = self.queue(name).await?;
        let mut tx = self.pool.begin().await?;
        db::queue::queue_set_global_concurrency(&mut *tx, queue.id, limit).await?;
        db::queue::queue_wake(&mut *tx, queue.id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The registered workers, most recently started first. A worker that crashed stays
    /// listed, with its last heartbeat, until a live worker reaps it.
    ///
    /// ```no_run
    /// # async fn demo(admin: pgqrs::Admin) -> pgqrs::Result<()> {
    /// for worker in admin.list_workers().await? {
    ///     println!("{} (pid {}) last seen {}", worker.name, worker.pid, worker.heartbeat_at);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list_workers(&self) -> Result<Vec<WorkerInfo>> {
        let rows = db::worker::worker_list(&self.pool).await?;
        Ok(rows.into_iter().map(WorkerInfo::from).collect())
    }

    /// Up to `limit` dead letters of the queue, by job id.
    ///
    /// ```no_run
    /// # async fn demo(admin: pgqrs::Admin) -> pgqrs::Result<()> {
    /// let dead = admin.dead_letters("tasks", 50).await?;
    /// # Ok(()) }
    /// ```
    pub async fn dead_letters(&self, name: &str, limit: usize) -> Result<Vec<DeadLetter>> {
        let queue = self.queue(name).await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = db::dead_letter::dead_letter_list(&self.pool, queue.id, 0, limit).await?;
        Ok(rows.into_iter().map(DeadLetter::from).collect())
    }

    /// Moves the given dead letters back into their queue as fresh jobs (same ids, attempts
    /// reset). Ids not among the queue's dead letters are ignored. Returns the moved ids.
    ///
    /// ```no_run
    /// # async fn demo(admin: pgqrs::Admin) -> pgqrs::Result<()> {
    /// let moved = admin.redrive("tasks", &[42, 43]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn redrive(&self, name: &str, ids: &[i64]) -> Result<Vec<i64>> {
        let queue = self.queue(name).await?;
        Ok(db::dead_letter::dead_letter_redrive(&self.pool, queue.id, Some(ids)).await?)
    }

    /// Moves all of the queue's dead letters back into it. Returns the moved ids.
    ///
    /// ```no_run
    /// # async fn demo(admin: pgqrs::Admin) -> pgqrs::Result<()> {
    /// let moved = admin.redrive_all("tasks").await?;
    /// # Ok(()) }
    /// ```
    pub async fn redrive_all(&self, name: &str) -> Result<Vec<i64>> {
        let queue = self.queue(name).await?;
        Ok(db::dead_letter::dead_letter_redrive(&self.pool, queue.id, None).await?)
    }

    async fn queue(&self, name: &str) -> Result<QueueInfo> {
        Ok(QueueHandle::open(&self.config, name).await?.info)
    }
}
