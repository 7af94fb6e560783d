//! Dequeueing jobs under a lease and settling them.

mod lease_book;

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::PgPool;

use std::collections::HashSet;

use crate::db::{self, job as jobs, job::Ack, job::ClaimBatch};
use crate::queue::QueueHandle;
use crate::{Config, Error, Job, JobType, Lease, Nacked, Payload, QueueInfo, Result};
use lease_book::LeaseBook;

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
    pool: PgPool,
    queue: QueueInfo,
    visibility_timeout: Duration,
    /// The registered worker this consumer claims for, if any.
    worker_id: Option<i64>,
    /// The queue has a global concurrency cap (learned from claims): claim under its lock.
    capped: AtomicBool,
    leases: LeaseBook,
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
        Ok(Consumer {
            pool: handle.pool,
            capped: AtomicBool::new(handle.info.global_concurrency.is_some()),
            queue: handle.info,
            visibility_timeout: config.get_visibility_timeout(),
            worker_id: None,
            leases: LeaseBook::default(),
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

    /// Claims up to `n` runnable jobs in one round trip (higher priority first).
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

    /// Claims up to `n` runnable jobs for `lease` in one round trip.
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

    /// Archives the held jobs `done` with `outcome` and claims up to `n` more, in one
    /// statement: the ack of one batch rides on the claim of the next, so a busy consumer
    /// pays one round trip (and one commit) per batch. Jobs of `done` whose lease was lost
    /// are left alone and listed in [`Handoff::lost`].
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

    async fn claim_after(
        &self,
        n: usize,
        lease: Duration,
        done: &[i64],
        outcome: &str,
    ) -> Result<Handoff<T>> {
        let limit = i64::try_from(n).unwrap_or(i64::MAX);
        let (acked, tokens) = self.leases.held(done);
        let ack = Ack {
            ids: &acked,
            tokens: &tokens,
            outcome,
        };
        let batch = self.claim(limit, db::secs(lease), ack).await?;
        let archived: HashSet<i64> = batch.archived.iter().copied().collect();
        self.leases.forget(&acked, &archived);
        let lost: Vec<i64> = done
            .iter()
            .copied()
            .filter(|id| !archived.contains(id))
            .collect();
        let rows = batch.jobs;
        let mut claimed = Vec::with_capacity(rows.len());
        let mut undecodable = Vec::new();
        for row in rows {
            match serde_json::from_str::<T>(&row.payload) {
                Ok(payload) => claimed.push((
                    row.lease_token,
                    Job {
                        id: row.id,
                        payload,
                        attempts: row.attempts,
                        priority: row.priority,
                        enqueued_at: row.enqueued_at,
                        lease_expires_at: row.lease_expires_at,
                        lease: Lease::new(row.id, row.lease_token),
                    },
                )),
                Err(source) => undecodable.push((row.id, row.lease_token, source)),
            }
        }
        if !undecodable.is_empty() {
            return Err(self.reject_undecodable(undecodable, claimed).await?);
        }
        for (_, job) in &claimed {
            self.leases.hold(job.id, job.lease.clone());
        }
        tracing::debug!(queue = %self.queue.name, count = claimed.len(), "claimed");
        Ok(Handoff {
            jobs: claimed.into_iter().map(|(_, job)| job).collect(),
            lost,
        })
    }

    /// One claim statement; on a capped queue, under the queue's claim lock so that the cap
    /// holds across all consumers.
    async fn claim(&self, limit: i64, lease_secs: f64, ack: Ack<'_>) -> Result<ClaimBatch> {
        // Two claims can deadlock when both follow the update chain of a row the other
        // just acked (Postgres waits there despite SKIP LOCKED). The loser's statement was
        // rolled back whole, ack included, so running it again is safe.
        let mut attempt = 0;
        loop {
            match self.claim_once(limit, lease_secs, ack).await {
                Err(Error::Database(err)) if db::is_deadlock(&err) && attempt < 3 => {
                    attempt += 1;
                    tracing::debug!(queue = %self.queue.name, attempt, "claim deadlocked; retrying");
                }
                result => return result,
            }
        }
    }

    async fn claim_once(&self, limit: i64, lease_secs: f64, ack: Ack<'_>) -> Result<ClaimBatch> {
        let batch = if self.capped.load(Ordering::Relaxed) {
            self.claim_locked(limit, lease_secs, ack).await?
        } else {
            let batch = self
                .claim_statement(&self.pool, limit, lease_secs, false, ack)
                .await?;
            if batch.capped && !batch.paused {
                // The cap was set since we last looked: claim again, properly. The ack is
                // done already.
                let mut again = self.claim_locked(limit, lease_secs, Ack::NONE).await?;
                again.archived = batch.archived;
                again
            } else {
                batch
            }
        };
        self.capped.store(batch.capped, Ordering::Relaxed);
        Ok(batch)
    }

    async fn claim_locked(&self, limit: i64, lease_secs: f64, ack: Ack<'_>) -> Result<ClaimBatch> {
        let mut tx = self.pool.begin().await?;
        db::queue::queue_lock_claims(&mut tx, self.queue.id).await?;
        let batch = self
            .claim_statement(&mut *tx, limit, lease_secs, true, ack)
            .await?;
        tx.commit().await?;
        Ok(batch)
    }

    async fn claim_statement<'c>(
        &self,
        db: impl sqlx::PgExecutor<'c>,
        limit: i64,
        lease_secs: f64,
        holds_claim_lock: bool,
        ack: Ack<'_>,
    ) -> Result<ClaimBatch> {
        jobs::job_claim_batch(
            db,
            self.queue.id,
            limit,
            lease_secs,
            self.worker_id,
            holds_claim_lock,
            ack,
        )
        .await?
        .ok_or_else(|| Error::QueueNotFound {
            queue: self.queue.name.to_string(),
        })
    }

    /// Buries undecodable jobs with the reason, releases the decodable ones of the same
    /// claim, and returns the decode error of the first undecodable job to report.
    async fn reject_undecodable(
        &self,
        undecodable: Vec<Undecodable>,
        decodable: Vec<(i64, Job<T>)>,
    ) -> Result<Error> {
        let type_name = std::any::type_name::<T>();
        for (id, token, source) in &undecodable {
            let reason = format!("payload does not decode as `{type_name}`: {source}");
            jobs::job_bury_batch(&self.pool, &[*id], &[*token], &reason).await?;
            tracing::error!(queue = %self.queue.name, job_id = id, %reason, "moved to dead letters");
        }
        if !decodable.is_empty() {
            let (tokens, ids): (Vec<i64>, Vec<i64>) = decodable
                .iter()
                .map(|(token, job)| (*token, job.id))
                .unzip();
            jobs::job_release_batch(&self.pool, &ids, &tokens).await?;
        }
        let mut undecodable = undecodable.into_iter();
        Ok(match undecodable.next() {
            Some((id, _, source)) => Error::Decode {
                id,
                queue: self.queue.name.to_string(),
                type_name,
                source,
            },
            None => Error::InvalidArgument("no undecodable job to reject".into()),
        })
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
                jobs::job_archive_batch(&self.pool, &ids, &tokens, outcome).await
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
                jobs::job_delete_batch(&self.pool, &ids, &tokens).await
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
                jobs::job_bury_batch(&self.pool, &ids, &tokens, reason).await
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
    /// Returns the new expiry.
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
