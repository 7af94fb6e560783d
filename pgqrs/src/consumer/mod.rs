//! Dequeueing jobs under a lease and settling them.

mod claim;
mod lease_book;

use std::marker::PhantomData;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::db::Db;

use crate::db::{self, job as jobs};
use crate::metrics::{self, QueueInstruments};
use crate::queue::QueueHandle;
use crate::{Config, Error, Job, JobType, Nacked, Payload, QueueInfo, Result};
use lease_book::LeaseBook;

/// The most jobs one claim takes; a larger batch asked of [`Consumer::dequeue_batch`] or
/// [`Consumer::archive_and_dequeue`] returns at most this many (ask again for the rest).
/// The claim statement carries it as a constant, which keeps its plan's cost, and so the
/// plan Postgres caches for it, the same at any queue depth.
///
/// ```
/// assert_eq!(pgqrs::MAX_CLAIM_BATCH, 1_000);
/// ```
pub const MAX_CLAIM_BATCH: usize = 1_000;

/// What [`Consumer::archive_and_dequeue`] did: the jobs it claimed, and the acked jobs it
/// could not archive because their lease was lost.
///
/// ```no_run
/// # async fn demo(consumer: pgqrs::Consumer, done: Vec<i64>) -> pgqrs::Result<()> {
/// let handoff = consumer.archive_and_dequeue(&done, "completed", 10).await?;
/// if !handoff.lost.is_empty() {
///     eprintln!("another consumer has {:?}; their results were not recorded", handoff.lost);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct Handoff<T> {
    /// The newly claimed jobs.
    pub jobs: Vec<Job<T>>,
    /// Acked jobs whose lease was lost: not archived.
    pub lost: Vec<i64>,
}

/// A claimed job whose payload did not decode: id, lease token, serde's reason.
type Undecodable = (i64, i64, serde_json::Error);

/// Claims jobs of one queue under a lease and settles them.
///
/// A claimed job is invisible to other consumers until its lease (the visibility timeout)
/// ends. Each claim carries a fresh fencing token, remembered here per job id: `archive`,
/// `delete`, `nack` and `extend` act only while that token is still the job's, and
/// otherwise fail with [`Error::LeaseLost`] instead of touching a job someone else holds.
/// Settle a job with the consumer that dequeued it (share one consumer through an `Arc`).
///
/// ```no_run
/// # async fn demo(config: pgqrs::Config) -> pgqrs::Result<()> {
/// let consumer = pgqrs::Consumer::new(&config, "tasks").await?;
/// if let Some(msg) = consumer.dequeue().await? {
///     println!("Processing: {}", msg.payload);
///     consumer.archive(msg.id, "completed").await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Consumer<T: Payload = serde_json::Value> {
    pool: Db,
    queue: QueueInfo,
    visibility_timeout: Duration,
    /// The registered worker this consumer claims for, if any.
    worker_id: Option<i64>,
    /// The queue has a global concurrency cap (learned from claims): claim under its lock.
    capped: AtomicBool,
    leases: LeaseBook,
    metrics: QueueInstruments,
    payload: PhantomData<fn() -> T>,
}

impl Consumer<serde_json::Value> {
    /// An untyped consumer of the existing queue `queue`; payloads are `serde_json::Value`.
    ///
    /// ```no_run
    /// # async fn demo(config: pgqrs::Config) -> pgqrs::Result<()> {
    /// let consumer = pgqrs::Consumer::new(&config, "tasks").await?;
    /// # Ok(()) }
    /// ```
    pub async fn new(config: &Config, queue: &str) -> Result<Self> {
        Self::open(config, queue).await
    }
}

impl<T: Payload> Consumer<T> {
    /// A consumer of `T`'s queue that decodes every payload as `T`.
    ///
    /// ```no_run
    /// # #[derive(serde::Serialize, serde::Deserialize, pgqrs::Job)]
    /// # #[pgqrs(queue = "emails")]
    /// # struct SendEmail { to: String }
    /// # async fn demo(config: pgqrs::Config) -> pgqrs::Result<()> {
    /// let consumer = pgqrs::Consumer::<SendEmail>::typed(&config).await?;
    /// if let Some(job) = consumer.dequeue().await? {
    ///     println!("mail to {}", job.payload.to);
    ///     consumer.archive(job.id, "sent").await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn typed(config: &Config) -> Result<Self>
    where
        T: JobType,
    {
        Self::open(config, T::QUEUE).await
    }

    pub(crate) async fn open(config: &Config, queue: &str) -> Result<Self> {
        let handle = QueueHandle::open(config, queue).await?;
        let metrics = QueueInstruments::new(&handle.info.name);
        Ok(Consumer {
            pool: handle.pool,
            capped: AtomicBool::new(handle.info.global_concurrency.is_some()),
            queue: handle.info,
            visibility_timeout: config.get_visibility_timeout(),
            worker_id: None,
            leases: LeaseBook::default(),
            metrics,
            payload: PhantomData,
        })
    }

    /// A consumer that claims on behalf of the registered worker `worker_id`.
    pub(crate) async fn for_worker(
        config: &Config,
        queue: &str,
        worker_id: i64,
        visibility_timeout: Duration,
    ) -> Result<Self> {
        let mut consumer = Self::open(config, queue).await?;
        consumer.worker_id = Some(worker_id);
        consumer.visibility_timeout = visibility_timeout;
        Ok(consumer)
    }

    /// Sets this consumer's default lease length.
    ///
    /// ```no_run
    /// # async fn demo(config: pgqrs::Config) -> pgqrs::Result<()> {
    /// use std::time::Duration;
    /// let consumer = pgqrs::Consumer::new(&config, "tasks").await?
    ///     .with_visibility_timeout(Duration::from_secs(300));
    /// # Ok(()) }
    /// ```
    pub fn with_visibility_timeout(mut self, timeout: Duration) -> Self {
        self.visibility_timeout = timeout;
        self
    }

    /// The queue this consumer reads.
    ///
    /// ```no_run
    /// # async fn demo(consumer: pgqrs::Consumer) {
    /// println!("reading {}", consumer.queue().name);
    /// # }
    /// ```
    pub fn queue(&self) -> &QueueInfo {
        &self.queue
    }

    /// Claims the next runnable job for the default visibility timeout.
    ///
    /// ```no_run
    /// # async fn demo(consumer: pgqrs::Consumer) -> pgqrs::Result<()> {
    /// while let Some(job) = consumer.dequeue().await? {
    ///     consumer.archive(job.id, "done").await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn dequeue(&self) -> Result<Option<Job<T>>> {
        self.dequeue_for(self.visibility_timeout).await
    }

    /// Claims the next runnable job for `lease`.
    ///
    /// ```no_run
    /// # async fn demo(consumer: pgqrs::Consumer) -> pgqrs::Result<()> {
    /// let job = consumer.dequeue_for(std::time::Duration::from_secs(600)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn dequeue_for(&self, lease: Duration) -> Result<Option<Job<T>>> {
        Ok(self.dequeue_batch_for(1, lease).await?.pop())
    }

    /// Claims up to `n` runnable jobs in one round trip (higher priority first), at most
    /// [`MAX_CLAIM_BATCH`].
    ///
    /// If a claimed payload does not decode as `T`, that job moves to the dead letters, the
    /// others are handed back untouched for the next call, and [`Error::Decode`] is returned.
    ///
    /// ```no_run
    /// # async fn demo(consumer: pgqrs::Consumer) -> pgqrs::Result<()> {
    /// let jobs = consumer.dequeue_batch(100).await?;
    /// let ids: Vec<i64> = jobs.iter().map(|job| job.id).collect();
    /// consumer.archive_batch(&ids, "completed").await?;
    /// # Ok(()) }
    /// ```
    pub async fn dequeue_batch(&self, n: usize) -> Result<Vec<Job<T>>> {
        self.dequeue_batch_for(n, self.visibility_timeout).await
    }

    /// Claims up to `n` (at most [`MAX_CLAIM_BATCH`]) runnable jobs for `lease` in one round
    /// trip.
    ///
    /// ```no_run
    /// # async fn demo(consumer: pgqrs::Consumer) -> pgqrs::Result<()> {
    /// let jobs = consumer.dequeue_batch_for(10, std::time::Duration::from_secs(5)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn dequeue_batch_for(&self, n: usize, lease: Duration) -> Result<Vec<Job<T>>> {
        if n == 0 {
            return Err(Error::InvalidArgument(
                "batch size must be at least 1".into(),
            ));
        }
        if lease.is_zero() {
            return Err(Error::InvalidArgument(
                "a lease must be longer than zero".into(),
            ));
        }
        Ok(self.claim_after(n, lease, &[], "").await?.jobs)
    }

    /// Archives the held jobs `done` with `outcome` and claims up to `n` more (at most
    /// [`MAX_CLAIM_BATCH`]), in one statement: the ack of one batch rides on the claim of
    /// the next, so a busy consumer pays one round trip (and one commit) per batch. Jobs of
    /// `done` whose lease was lost are left alone and listed in [`Handoff::lost`].
    ///
    /// ```no_run
    /// # async fn demo(consumer: pgqrs::Consumer) -> pgqrs::Result<()> {
    /// let mut jobs = consumer.dequeue_batch(100).await?;
    /// while !jobs.is_empty() {
    ///     let done: Vec<i64> = jobs.iter().map(|job| job.id).collect(); // ... after the work
    ///     jobs = consumer.archive_and_dequeue(&done, "completed", 100).await?.jobs;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn archive_and_dequeue(
        &self,
        done: &[i64],
        outcome: &str,
        n: usize,
    ) -> Result<Handoff<T>> {
        self.claim_after(n, self.visibility_timeout, done, outcome)
            .await
    }

    /// Moves a held job to the archive, recording `outcome`.
    ///
    /// ```no_run
    /// # async fn demo(consumer: pgqrs::Consumer, id: i64) -> pgqrs::Result<()> {
    /// consumer.archive(id, "completed").await?;
    /// # Ok(()) }
    /// ```
    pub async fn archive(&self, id: i64, outcome: &str) -> Result<()> {
        self.archive_batch(&[id], outcome).await
    }

    /// Archives held jobs in one round trip. Jobs whose lease was lost are left alone and
    /// reported together in [`Error::LeaseLost`]; the others are archived.
    ///
    /// ```no_run
    /// # async fn demo(consumer: pgqrs::Consumer) -> pgqrs::Result<()> {
    /// consumer.archive_batch(&[1, 2, 3], "completed").await?;
    /// # Ok(()) }
    /// ```
    pub async fn archive_batch(&self, ids: &[i64], outcome: &str) -> Result<()> {
        self.leases
            .settle(ids, |ids, tokens| async move {
                let done = jobs::job_archive_batch(&self.pool, &ids, &tokens, outcome).await?;
                metrics::add(&self.metrics.completed, done.len());
                Ok(done)
            })
            .await
    }

    /// Deletes a held job without keeping history (an ack).
    ///
    /// ```no_run
    /// # async fn demo(consumer: pgqrs::Consumer, id: i64) -> pgqrs::Result<()> {
    /// consumer.delete(id).await?;
    /// # Ok(()) }
    /// ```
    #[doc(alias = "ack")]
    pub async fn delete(&self, id: i64) -> Result<()> {
        self.delete_batch(&[id]).await
    }

    /// Deletes held jobs in one round trip; lost leases are reported as in `archive_batch`.
    ///
    /// ```no_run
    /// # async fn demo(consumer: pgqrs::Consumer) -> pgqrs::Result<()> {
    /// consumer.delete_batch(&[1, 2, 3]).await?;
    /// # Ok(()) }
    /// ```
    #[doc(alias = "ack_batch")]
    pub async fn delete_batch(&self, ids: &[i64]) -> Result<()> {
        self.leases
            .settle(ids, |ids, tokens| async move {
                let done = jobs::job_delete_batch(&self.pool, &ids, &tokens).await?;
                metrics::add(&self.metrics.completed, done.len());
                Ok(done)
            })
            .await
    }

    /// Moves a held job to the dead letters with `reason` (a poison message).
    ///
    /// ```no_run
    /// # async fn demo(consumer: pgqrs::Consumer, id: i64) -> pgqrs::Result<()> {
    /// consumer.dead_letter(id, "customer account closed").await?;
    /// # Ok(()) }
    /// ```
    pub async fn dead_letter(&self, id: i64, reason: &str) -> Result<()> {
        self.leases
            .settle(&[id], |ids, tokens| async move {
                let done = jobs::job_bury_batch(&self.pool, &ids, &tokens, reason).await?;
                metrics::add(&self.metrics.dead_lettered, done.len());
                Ok(done)
            })
            .await
    }

    /// Gives a held job back to be retried after `retry_in`, or to the dead letters if it
    /// has had the queue's `max_attempts` deliveries.
    ///
    /// ```no_run
    /// # async fn demo(consumer: pgqrs::Consumer, id: i64) -> pgqrs::Result<()> {
    /// consumer.nack(id, std::time::Duration::from_secs(10)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn nack(&self, id: i64, retry_in: Duration) -> Result<Nacked> {
        self.retry(id, retry_in, None).await
    }

    /// Like [`nack`](Self::nack), recording `error` as the job's last error (and as the
    /// dead-letter reason if it is out of attempts).
    ///
    /// ```no_run
    /// # async fn demo(consumer: pgqrs::Consumer, id: i64) -> pgqrs::Result<()> {
    /// consumer.nack_with_error(id, std::time::Duration::from_secs(10), "SMTP 451").await?;
    /// # Ok(()) }
    /// ```
    pub async fn nack_with_error(
        &self,
        id: i64,
        retry_in: Duration,
        error: &str,
    ) -> Result<Nacked> {
        self.retry(id, retry_in, Some(error)).await
    }

    async fn retry(&self, id: i64, retry_in: Duration, error: Option<&str>) -> Result<Nacked> {
        let outcome = self
            .nack_many(&[(id, retry_in, error.map(str::to_owned))])
            .await?;
        outcome
            .into_iter()
            .next()
            .and_then(|(_, nacked)| nacked)
            .ok_or(Error::LeaseLost { job_ids: vec![id] })
    }

    /// Nacks held jobs, each with its own delay and error, in one round trip. Returns what
    /// became of each; `None` for a job whose lease was lost.
    pub(crate) async fn nack_many(
        &self,
        nacks: &[(i64, Duration, Option<String>)],
    ) -> Result<Vec<(i64, Option<Nacked>)>> {
        let ids: Vec<i64> = nacks.iter().map(|(id, _, _)| *id).collect();
        let (held, tokens) = self.leases.held(&ids);
        let by_id: std::collections::HashMap<i64, (f64, Option<String>)> = nacks
            .iter()
            .map(|(id, delay, error)| (*id, (db::secs(*delay), error.clone())))
            .collect();
        let (delays, errors): (Vec<f64>, Vec<Option<String>>) =
            held.iter().filter_map(|id| by_id.get(id).cloned()).unzip();
        let rows = if held.is_empty() {
            Vec::new()
        } else {
            jobs::job_retry_batch(&self.pool, &held, &tokens, &delays, &errors).await?
        };
        let outcome: std::collections::HashMap<i64, Nacked> = rows
            .into_iter()
            .map(|row| {
                let nacked = match row.run_at {
                    Some(run_at) => Nacked::Retrying { run_at },
                    None => Nacked::DeadLettered,
                };
                match nacked {
                    Nacked::Retrying { .. } => self.metrics.retried.increment(1),
                    Nacked::DeadLettered => self.metrics.dead_lettered.increment(1),
                }
                (row.id, nacked)
            })
            .collect();
        let done = outcome.keys().copied().collect();
        self.leases.forget(&held, &done);
        Ok(ids
            .iter()
            .map(|id| (*id, outcome.get(id).copied()))
            .collect())
    }

    /// Hands held jobs back without counting this delivery, for work that never started
    /// (a worker's prefetched jobs at shutdown). Lost leases are reported as in
    /// `archive_batch`.
    ///
    /// ```no_run
    /// # async fn demo(consumer: pgqrs::Consumer) -> pgqrs::Result<()> {
    /// let jobs = consumer.dequeue_batch(10).await?;
    /// let ids: Vec<i64> = jobs.iter().map(|job| job.id).collect();
    /// consumer.release_batch(&ids).await?; // changed our mind
    /// # Ok(()) }
    /// ```
    pub async fn release_batch(&self, ids: &[i64]) -> Result<()> {
        self.leases
            .settle(ids, |ids, tokens| async move {
                jobs::job_release_batch(&self.pool, &ids, &tokens).await
            })
            .await
    }

    /// Extends the lease on a held job to `lease` from now (a heartbeat for long work).
    /// Returns the new expiry. A claim leases its batch as one: extending any job of it
    /// extends the jobs of the batch still held.
    ///
    /// ```no_run
    /// # async fn demo(consumer: pgqrs::Consumer, id: i64) -> pgqrs::Result<()> {
    /// let until = consumer.extend(id, std::time::Duration::from_secs(60)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn extend(&self, id: i64, lease: Duration) -> Result<chrono::DateTime<chrono::Utc>> {
        let token = self.leases.token(id)?;
        match jobs::job_extend_lease(&self.pool, id, token, db::secs(lease)).await? {
            Some(until) => Ok(until),
            None => {
                self.leases.forget(&[id], &Default::default());
                Err(Error::LeaseLost { job_ids: vec![id] })
            }
        }
    }

    /// Forgets the leases of jobs a handler settled through its own statement.
    pub(crate) fn forget_settled(&self, ids: &[i64]) {
        self.leases.forget(ids, &ids.iter().copied().collect());
    }

    /// Every job this consumer holds, with its token.
    pub(crate) fn held_leases(&self) -> (Vec<i64>, Vec<i64>) {
        self.leases.all()
    }

    /// Marks lost the leases of `(ids, tokens)` a heartbeat could not extend.
    pub(crate) fn drop_unextended(
        &self,
        ids: &[i64],
        tokens: &[i64],
        extended: &std::collections::HashSet<i64>,
    ) -> Vec<i64> {
        self.leases.drop_unextended(ids, tokens, extended)
    }
}
