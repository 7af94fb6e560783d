//! Enqueueing jobs.

use std::marker::PhantomData;
use std::sync::Arc;

use sqlx::{PgConnection, Postgres, Transaction};

use crate::db::Db;

use crate::db::{self, job as jobs};
use crate::metrics::QueueInstruments;
use crate::queue::QueueHandle;
use crate::wake_gate::WakeGate;
use crate::{Config, EnqueueOptions, Enqueued, Error, JobType, Payload, QueueInfo, Result};

/// Enqueues payloads of type `T` into one queue.
///
/// `Producer::new(&config, "tasks")` gives the untyped form (`T = serde_json::Value`);
/// `Producer::<SendEmail>::typed(&config)` the typed one, bound by `#[derive(Job)]` to its
/// queue, which accepts nothing but `SendEmail`. Both are the same code.
///
/// ```no_run
/// # async fn demo(config: pgqrs::Config) -> pgqrs::Result<()> {
/// use pgqrs::{Job, Producer};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, Job)]
/// #[pgqrs(queue = "emails")]
/// struct SendEmail { to: String }
///
/// let emails = Producer::<SendEmail>::typed(&config).await?;
/// emails.enqueue(&SendEmail { to: "a@example.com".into() }).await?;
///
/// let tasks = Producer::new(&config, "tasks").await?;
/// tasks.enqueue(&serde_json::json!({"task": "resize"})).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Producer<T: Payload = serde_json::Value> {
    pool: Db,
    queue: QueueInfo,
    max_payload_bytes: usize,
    notify: bool,
    wake: Arc<WakeGate>,
    metrics: QueueInstruments,
    payload: PhantomData<fn(&T)>,
}

impl Producer<serde_json::Value> {
    /// An untyped producer for the existing queue `queue`.
    ///
    /// ```no_run
    /// # async fn demo(config: pgqrs::Config) -> pgqrs::Result<()> {
    /// let producer = pgqrs::Producer::new(&config, "tasks").await?;
    /// # Ok(()) }
    /// ```
    pub async fn new(config: &Config, queue: &str) -> Result<Self> {
        Self::open(config, queue).await
    }
}

impl<T: Payload> Producer<T> {
    /// A producer for `T`'s queue (named by `#[pgqrs(queue = "...")]`).
    ///
    /// ```no_run
    /// # #[derive(serde::Serialize, serde::Deserialize, pgqrs::Job)]
    /// # #[pgqrs(queue = "emails")]
    /// # struct SendEmail { to: String }
    /// # async fn demo(config: pgqrs::Config) -> pgqrs::Result<()> {
    /// let producer = pgqrs::Producer::<SendEmail>::typed(&config).await?;
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
        let metrics = QueueInstruments::new(&handle.info.name);
        let wake = config.wake_gate(handle.info.id);
        Ok(Producer {
            pool: handle.pool,
            queue: handle.info,
            max_payload_bytes: config.get_max_payload_bytes(),
            notify: config.get_notify(),
            wake,
            metrics,
            payload: PhantomData,
        })
    }

    /// The queue this producer writes to.
    ///
    /// ```no_run
    /// # async fn demo(producer: pgqrs::Producer) {
    /// println!("writing to {}", producer.queue().name);
    /// # }
    /// ```
    pub fn queue(&self) -> &QueueInfo {
        &self.queue
    }

    /// Enqueues one job, runnable now at priority 0.
    ///
    /// ```no_run
    /// # async fn demo(producer: pgqrs::Producer) -> pgqrs::Result<()> {
    /// let message = producer.enqueue(&serde_json::json!({"task": "send_email"})).await?;
    /// println!("enqueued {}", message.id);
    /// # Ok(()) }
    /// ```
    pub async fn enqueue(&self, payload: &T) -> Result<Enqueued> {
        self.enqueue_with(payload, &EnqueueOptions::default()).await
    }

    /// Enqueues one job with a priority and/or a delay.
    ///
    /// ```no_run
    /// # async fn demo(producer: pgqrs::Producer) -> pgqrs::Result<()> {
    /// use std::time::Duration;
    /// let options = pgqrs::EnqueueOptions::builder().delay(Duration::from_secs(30)).priority(5).build();
    /// producer.enqueue_with(&serde_json::json!({"task": "later"}), &options).await?;
    /// # Ok(()) }
    /// ```
    pub async fn enqueue_with(&self, payload: &T, options: &EnqueueOptions) -> Result<Enqueued> {
        let mut rows = self
            .insert_now(std::slice::from_ref(payload), options)
            .await?;
        rows.pop().ok_or_else(missing_row)
    }

    /// Enqueues many jobs in one round trip; results are in input order.
    ///
    /// ```no_run
    /// # async fn demo(producer: pgqrs::Producer) -> pgqrs::Result<()> {
    /// let jobs: Vec<_> = (0..100).map(|n| serde_json::json!({"n": n})).collect();
    /// let enqueued = producer.enqueue_batch(&jobs).await?;
    /// assert_eq!(enqueued.len(), 100);
    /// # Ok(()) }
    /// ```
    pub async fn enqueue_batch(&self, payloads: &[T]) -> Result<Vec<Enqueued>> {
        self.insert_now(payloads, &EnqueueOptions::default()).await
    }

    /// Enqueues many jobs with the same options in one round trip.
    ///
    /// ```no_run
    /// # async fn demo(producer: pgqrs::Producer) -> pgqrs::Result<()> {
    /// let options = pgqrs::EnqueueOptions::builder().priority(-1).build();
    /// producer.enqueue_batch_with(&[serde_json::json!(1), serde_json::json!(2)], &options).await?;
    /// # Ok(()) }
    /// ```
    pub async fn enqueue_batch_with(
        &self,
        payloads: &[T],
        options: &EnqueueOptions,
    ) -> Result<Vec<Enqueued>> {
        self.insert_now(payloads, options).await
    }

    /// Enqueues inside the caller's transaction: the job exists if and only if the
    /// transaction commits.
    ///
    /// ```no_run
    /// # async fn demo(pool: sqlx::PgPool, producer: pgqrs::Producer) -> pgqrs::Result<()> {
    /// let mut tx = pool.begin().await?;
    /// sqlx::query("INSERT INTO orders (id) VALUES (1)").execute(&mut *tx).await?;
    /// producer.enqueue_tx(&mut tx, &serde_json::json!({"order": 1}), &Default::default()).await?;
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn enqueue_tx(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        payload: &T,
        options: &EnqueueOptions,
    ) -> Result<Enqueued> {
        let mut rows = self
            .insert(tx, std::slice::from_ref(payload), options, self.notify)
            .await?;
        rows.pop().ok_or_else(missing_row)
    }

    /// Enqueues many jobs inside the caller's transaction, in one round trip.
    ///
    /// ```no_run
    /// # async fn demo(pool: sqlx::PgPool, producer: pgqrs::Producer) -> pgqrs::Result<()> {
    /// let mut tx = pool.begin().await?;
    /// producer.enqueue_batch_tx(&mut tx, &[serde_json::json!(1)], &Default::default()).await?;
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn enqueue_batch_tx(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        payloads: &[T],
        options: &EnqueueOptions,
    ) -> Result<Vec<Enqueued>> {
        self.insert(tx, payloads, options, self.notify).await
    }

    /// Inserts outside any caller transaction: on the pool, or behind
    /// [`Pooler::TransactionLegacy`](crate::Pooler) in a transaction of its own. Wakes the
    /// queue's workers through the [`WakeGate`]: in the statement if no other enqueue of
    /// this process is carrying the queue's wake-up, else with a bare `NOTIFY` afterwards.
    async fn insert_now(&self, payloads: &[T], options: &EnqueueOptions) -> Result<Vec<Enqueued>> {
        let carrier = if self.notify {
            self.wake.try_carry()
        } else {
            None
        };
        let carried = carrier.is_some();
        let rows = self.insert_committed(payloads, options, carried).await;
        drop(carrier);
        if self.notify {
            if !carried && rows.as_ref().is_ok_and(|rows| !rows.is_empty()) {
                self.wake.owe();
            }
            self.pay_owed_wake_up().await;
        }
        rows
    }

    async fn insert_committed(
        &self,
        payloads: &[T],
        options: &EnqueueOptions,
        notify: bool,
    ) -> Result<Vec<Enqueued>> {
        if !self.pool.is_legacy() {
            let mut conn = self.pool.pg().acquire().await?;
            return self.insert(&mut conn, payloads, options, notify).await;
        }
        let mut tx = self.pool.begin().await?;
        let rows = self.insert(&mut tx, payloads, options, notify).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Sends the wake-ups other enqueues owe, unless an enqueue in flight will.
    async fn pay_owed_wake_up(&self) {
        while let Some(_carrier) = self.wake.collect() {
            if let Err(error) = db::queue::queue_wake(self.pool.pg(), self.queue.id).await {
                self.wake.owe();
                tracing::warn!(queue = %self.queue.name, %error,
                    "could not wake the workers; they find the jobs at their next poll");
                return;
            }
        }
    }

    async fn insert(
        &self,
        conn: &mut PgConnection,
        payloads: &[T],
        options: &EnqueueOptions,
        notify: bool,
    ) -> Result<Vec<Enqueued>> {
        if payloads.is_empty() {
            return Ok(Vec::new());
        }
        let encoded = payloads
            .iter()
            .map(|payload| self.encode(payload))
            .collect::<Result<Vec<_>>>()?;
        let delay = db::secs(options.delay);
        let rows = match (&options.unique_key, encoded.as_slice()) {
            (None, [payload]) => jobs::job_insert_one(
                &mut *conn,
                self.queue.id,
                payload,
                options.priority,
                options.run_at,
                delay,
                notify,
            )
            .await?
            .into_iter()
            .collect(),
            (None, _) => {
                jobs::job_insert_batch(
                    &mut *conn,
                    self.queue.id,
                    &encoded,
                    options.priority,
                    options.run_at,
                    delay,
                    notify,
                )
                .await?
            }
            (Some(key), [payload]) => {
                // `None`: the key's holder committed after the statement's snapshot; the
                // next statement sees it (or sees it gone and inserts).
                let mut row = None;
                for _ in 0..5 {
                    row = jobs::job_insert_unique(
                        &mut *conn,
                        self.queue.id,
                        payload,
                        options.priority,
                        options.run_at,
                        delay,
                        key,
                        notify,
                    )
                    .await?;
                    if row.is_some() {
                        break;
                    }
                }
                row.into_iter().collect()
            }
            (Some(_), _) => {
                return Err(Error::InvalidArgument(
                    "`unique_key` applies to one job at a time; enqueue a batch without it".into(),
                ));
            }
        };
        if rows.is_empty() {
            // Nothing was inserted: the queue is gone (a unique key race would have retried).
            return Err(Error::QueueNotFound {
                queue: self.queue.name.to_string(),
            });
        }
        let inserted = rows.iter().filter(|row| !row.duplicate).count();
        crate::metrics::add(&self.metrics.enqueued, inserted);
        tracing::debug!(queue = %self.queue.name, count = rows.len(), inserted, "enqueued");
        Ok(rows
            .into_iter()
            .map(|row| Enqueued {
                id: row.id,
                run_at: row.run_at,
                duplicate: row.duplicate,
            })
            .collect())
    }

    fn encode(&self, payload: &T) -> Result<String> {
        crate::job::to_json_within(payload, self.max_payload_bytes)
    }
}

fn missing_row() -> Error {
    Error::Database(sqlx::Error::RowNotFound)
}
