//! Dequeueing jobs under a lease and settling them.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use sqlx::PgPool;

use crate::db::{self, job as jobs};
use crate::queue::QueueHandle;
use crate::{Config, Error, Job, JobType, Nacked, Payload, QueueInfo, Result};

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
    /// Fencing token of every job this consumer holds, by job id.
    leases: Mutex<HashMap<i64, i64>>,
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

    async fn open(config: &Config, queue: &str) -> Result<Self> {
        let handle = QueueHandle::open(config, queue).await?;
        Ok(Consumer {
            pool: handle.pool,
            queue: handle.info,
            visibility_timeout: config.get_visibility_timeout(),
            leases: Mutex::new(HashMap::new()),
            payload: PhantomData,
        })
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
        let limit = i64::try_from(n).unwrap_or(i64::MAX);
        let rows = jobs::job_claim_batch(&self.pool, self.queue.id, limit, db::secs(lease)).await?;
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
                    },
                )),
                Err(source) => undecodable.push((row.id, row.lease_token, source)),
            }
        }
        if !undecodable.is_empty() {
            return Err(self.reject_undecodable(undecodable, claimed).await?);
        }
        let mut leases = self.leases();
        for (token, job) in &claimed {
            leases.insert(job.id, *token);
        }
        drop(leases);
        tracing::debug!(queue = %self.queue.name, count = claimed.len(), "claimed");
        Ok(claimed.into_iter().map(|(_, job)| job).collect())
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
        self.settle(ids, |ids, tokens| async move {
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
        self.settle(ids, |ids, tokens| async move {
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
        self.settle(&[id], |ids, tokens| async move {
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
        let token = self.token(id)?;
        let row = jobs::job_retry(&self.pool, id, token, db::secs(retry_in), error).await?;
        self.leases().remove(&id);
        match row {
            None => Err(Error::LeaseLost { job_ids: vec![id] }),
            Some(row) => Ok(match row.run_at {
                Some(run_at) if !row.dead => Nacked::Retrying { run_at },
                _ => Nacked::DeadLettered,
            }),
        }
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
        let token = self.token(id)?;
        match jobs::job_extend_lease(&self.pool, id, token, db::secs(lease)).await? {
            Some(until) => Ok(until),
            None => {
                self.leases().remove(&id);
                Err(Error::LeaseLost { job_ids: vec![id] })
            }
        }
    }

    /// Runs a lease-fenced transition on the held jobs among `ids` and reports the ones it
    /// could not apply. Leases are forgotten once the database answered: either the job
    /// left the queue or someone else holds it now.
    async fn settle<F, Fut>(&self, ids: &[i64], transition: F) -> Result<()>
    where
        F: FnOnce(Vec<i64>, Vec<i64>) -> Fut,
        Fut: Future<Output = sqlx::Result<Vec<i64>>>,
    {
        let (held, tokens): (Vec<i64>, Vec<i64>) = {
            let leases = self.leases();
            ids.iter()
                .filter_map(|id| leases.get(id).map(|token| (*id, *token)))
                .unzip()
        };
        let done: HashSet<i64> = if held.is_empty() {
            HashSet::new()
        } else {
            transition(held.clone(), tokens)
                .await?
                .into_iter()
                .collect()
        };
        let mut leases = self.leases();
        for id in &held {
            leases.remove(id);
        }
        drop(leases);
        let lost: Vec<i64> = ids
            .iter()
            .copied()
            .filter(|id| !done.contains(id))
            .collect();
        if lost.is_empty() {
            Ok(())
        } else {
            Err(Error::LeaseLost { job_ids: lost })
        }
    }

    fn token(&self, id: i64) -> Result<i64> {
        self.leases()
            .get(&id)
            .copied()
            .ok_or(Error::LeaseLost { job_ids: vec![id] })
    }

    fn leases(&self) -> MutexGuard<'_, HashMap<i64, i64>> {
        // The map stays consistent even if a holder panicked: every update is one insert or remove.
        self.leases
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
