//! `Config`, `Producer`, `Consumer` and the values they return.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use pgqrs::{Consumer, EnqueueOptions, Producer};
use pyo3::IntoPyObjectExt;
use pyo3::prelude::*;

use crate::errors::{InvalidArgument, to_py};
use crate::json::{from_json_many, to_json, to_json_many};
use crate::runtime::{block_on, spawn, spawn_with};

/// Where to find Postgres. `repr()` never shows the password.
#[pyclass(name = "Config", module = "pgqrs", frozen)]
#[derive(Clone)]
pub(crate) struct PyConfig {
    pub(crate) inner: pgqrs::Config,
}

#[pymethods]
impl PyConfig {
    /// Parses a `postgresql://` URL.
    #[staticmethod]
    fn from_dsn(dsn: &str) -> PyResult<Self> {
        Ok(PyConfig {
            inner: pgqrs::Config::from_dsn(dsn).map_err(to_py)?,
        })
    }

    /// A copy with another pool size.
    fn with_max_connections(&self, n: u32) -> Self {
        PyConfig {
            inner: self.inner.clone().max_connections(n),
        }
    }

    /// A copy with another default lease (seconds).
    fn with_visibility_timeout(&self, seconds: f64) -> PyResult<Self> {
        Ok(PyConfig {
            inner: self
                .inner
                .clone()
                .visibility_timeout(seconds_to_duration(seconds)?),
        })
    }

    /// A copy declaring the connection pooler in front of Postgres: "none" (or "session"),
    /// "transaction" (pgbouncer >= 1.21 with max_prepared_statements) or
    /// "transaction-legacy" (older pgbouncer).
    fn with_pooler(&self, mode: &str) -> PyResult<Self> {
        let pooler: pgqrs::Pooler = mode.parse().map_err(to_py)?;
        Ok(PyConfig {
            inner: self.inner.clone().pooler(pooler),
        })
    }

    fn __repr__(&self) -> String {
        format!("Config({:?})", self.inner.to_string())
    }
}

/// A `Config`, or a DSN string made into one.
pub(crate) fn config_of(value: &Bound<'_, PyAny>) -> PyResult<pgqrs::Config> {
    if let Ok(config) = value.cast::<PyConfig>() {
        return Ok(config.get().inner.clone());
    }
    let dsn: String = value
        .extract()
        .map_err(|_| InvalidArgument::new_err("expected a pgqrs.Config or a DSN string"))?;
    pgqrs::Config::from_dsn(&dsn).map_err(to_py)
}

pub(crate) fn seconds_to_duration(seconds: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| InvalidArgument::new_err(format!("{seconds} is not a duration in seconds")))
}

/// A job delivered to a consumer.
#[pyclass(name = "Message", module = "pgqrs", frozen, get_all)]
pub(crate) struct PyMessage {
    /// Job id.
    id: i64,
    /// The payload, decoded from JSON.
    payload: Py<PyAny>,
    /// Deliveries so far, this one included.
    attempts: i32,
    /// Higher runs first.
    priority: i16,
    /// When it was enqueued.
    enqueued_at: DateTime<Utc>,
    /// When this consumer's lease ends unless extended.
    lease_expires_at: DateTime<Utc>,
}

#[pymethods]
impl PyMessage {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Message(id={}, attempts={}, payload={})",
            self.id,
            self.attempts,
            self.payload.bind(py)
        )
    }
}

impl PyMessage {
    /// Messages of claimed jobs; their payloads are decoded in one `json.loads`.
    fn from_jobs(py: Python<'_>, jobs: Vec<pgqrs::Message>) -> PyResult<Vec<Self>> {
        let payloads = from_json_many(py, jobs.iter().map(|job| &job.payload))?;
        Ok(jobs
            .into_iter()
            .zip(payloads)
            .map(|(job, payload)| PyMessage {
                id: job.id,
                payload,
                attempts: job.attempts,
                priority: job.priority,
                enqueued_at: job.enqueued_at,
                lease_expires_at: job.lease_expires_at,
            })
            .collect())
    }

    fn from_job(py: Python<'_>, job: Option<pgqrs::Message>) -> PyResult<Option<Self>> {
        Ok(Self::from_jobs(py, job.into_iter().collect())?.pop())
    }
}

/// What an enqueue returned.
#[pyclass(name = "Enqueued", module = "pgqrs", frozen, get_all)]
pub(crate) struct PyEnqueued {
    /// The job's id.
    id: i64,
    /// When it becomes runnable.
    run_at: DateTime<Utc>,
    /// It existed already under the same unique key.
    duplicate: bool,
}

#[pymethods]
impl PyEnqueued {
    fn __repr__(&self) -> String {
        format!(
            "Enqueued(id={}, run_at={}, duplicate={})",
            self.id, self.run_at, self.duplicate
        )
    }
}

impl From<pgqrs::Enqueued> for PyEnqueued {
    fn from(e: pgqrs::Enqueued) -> Self {
        PyEnqueued {
            id: e.id,
            run_at: e.run_at,
            duplicate: e.duplicate,
        }
    }
}

fn options(
    delay: Option<f64>,
    priority: i16,
    unique_key: Option<String>,
) -> PyResult<EnqueueOptions> {
    let mut options = EnqueueOptions::default();
    options.priority = priority;
    options.delay = seconds_to_duration(delay.unwrap_or(0.0))?;
    options.unique_key = unique_key;
    Ok(options)
}

/// Enqueues JSON payloads (a JSON string, or anything `json.dumps` takes) into one queue.
#[pyclass(name = "Producer", module = "pgqrs", frozen)]
pub(crate) struct PyProducer {
    inner: Arc<Producer>,
}

#[pymethods]
impl PyProducer {
    #[new]
    fn new(py: Python<'_>, config: &Bound<'_, PyAny>, queue: String) -> PyResult<Self> {
        let config = config_of(config)?;
        let producer = block_on(py, async move { Producer::new(&config, &queue).await })?;
        Ok(PyProducer {
            inner: Arc::new(producer),
        })
    }

    /// Enqueues one job; `delay` in seconds, higher `priority` runs first.
    #[pyo3(signature = (payload, *, delay=None, priority=0, unique_key=None))]
    fn enqueue(
        &self,
        py: Python<'_>,
        payload: &Bound<'_, PyAny>,
        delay: Option<f64>,
        priority: i16,
        unique_key: Option<String>,
    ) -> PyResult<PyEnqueued> {
        let payload = to_json(payload)?;
        let options = options(delay, priority, unique_key)?;
        let producer = Arc::clone(&self.inner);
        let enqueued = block_on(py, async move {
            producer.enqueue_with(&payload, &options).await
        })?;
        Ok(enqueued.into())
    }

    /// `enqueue`, awaitable.
    #[pyo3(signature = (payload, *, delay=None, priority=0, unique_key=None))]
    fn enqueue_async<'py>(
        &self,
        py: Python<'py>,
        payload: &Bound<'py, PyAny>,
        delay: Option<f64>,
        priority: i16,
        unique_key: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let payload = to_json(payload)?;
        let options = options(delay, priority, unique_key)?;
        let producer = Arc::clone(&self.inner);
        spawn(py, async move {
            let enqueued = producer.enqueue_with(&payload, &options).await?;
            Ok(PyEnqueued::from(enqueued))
        })
    }

    /// Enqueues a list of payloads in one round trip.
    fn enqueue_batch(
        &self,
        py: Python<'_>,
        payloads: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<PyEnqueued>> {
        let payloads = to_json_many(payloads)?;
        let producer = Arc::clone(&self.inner);
        let enqueued = block_on(py, async move { producer.enqueue_batch(&payloads).await })?;
        Ok(enqueued.into_iter().map(PyEnqueued::from).collect())
    }

    /// `enqueue_batch`, awaitable.
    fn enqueue_batch_async<'py>(
        &self,
        py: Python<'py>,
        payloads: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let payloads = to_json_many(payloads)?;
        let producer = Arc::clone(&self.inner);
        spawn(py, async move {
            let enqueued = producer.enqueue_batch(&payloads).await?;
            Ok(enqueued
                .into_iter()
                .map(PyEnqueued::from)
                .collect::<Vec<_>>())
        })
    }
}

/// Claims jobs of one queue under a lease and settles them; `archive`, `delete`, `nack`
/// and `extend` act only while this consumer still holds the lease (else `LeaseLost`).
#[pyclass(name = "Consumer", module = "pgqrs", frozen)]
pub(crate) struct PyConsumer {
    inner: Arc<Consumer>,
}

#[pymethods]
impl PyConsumer {
    #[new]
    #[pyo3(signature = (config, queue, *, visibility_timeout=None))]
    fn new(
        py: Python<'_>,
        config: &Bound<'_, PyAny>,
        queue: String,
        visibility_timeout: Option<f64>,
    ) -> PyResult<Self> {
        let config = config_of(config)?;
        let lease = visibility_timeout.map(seconds_to_duration).transpose()?;
        let consumer = block_on(py, async move { Consumer::new(&config, &queue).await })?;
        let consumer = match lease {
            Some(lease) => consumer.with_visibility_timeout(lease),
            None => consumer,
        };
        Ok(PyConsumer {
            inner: Arc::new(consumer),
        })
    }

    /// The next job, or `None`.
    fn dequeue(&self, py: Python<'_>) -> PyResult<Option<PyMessage>> {
        let consumer = Arc::clone(&self.inner);
        let job = block_on(py, async move { consumer.dequeue().await })?;
        PyMessage::from_job(py, job)
    }

    /// `dequeue`, awaitable.
    fn dequeue_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let consumer = Arc::clone(&self.inner);
        let job = async move { consumer.dequeue().await };
        spawn_with(py, job, |py, job| {
            PyMessage::from_job(py, job)?.into_py_any(py)
        })
    }

    /// Up to `n` jobs in one round trip.
    fn dequeue_batch(&self, py: Python<'_>, n: usize) -> PyResult<Vec<PyMessage>> {
        let consumer = Arc::clone(&self.inner);
        let jobs = block_on(py, async move { consumer.dequeue_batch(n).await })?;
        PyMessage::from_jobs(py, jobs)
    }

    /// `dequeue_batch`, awaitable.
    fn dequeue_batch_async<'py>(&self, py: Python<'py>, n: usize) -> PyResult<Bound<'py, PyAny>> {
        let consumer = Arc::clone(&self.inner);
        let jobs = async move { consumer.dequeue_batch(n).await };
        spawn_with(py, jobs, |py, jobs| {
            PyMessage::from_jobs(py, jobs)?.into_py_any(py)
        })
    }

    /// Moves a held job to the archive, recording `outcome`.
    #[pyo3(signature = (id, outcome="completed"))]
    fn archive(&self, py: Python<'_>, id: i64, outcome: &str) -> PyResult<()> {
        let (consumer, outcome) = (Arc::clone(&self.inner), outcome.to_owned());
        block_on(py, async move { consumer.archive(id, &outcome).await })
    }

    /// `archive`, awaitable.
    #[pyo3(signature = (id, outcome="completed"))]
    fn archive_async<'py>(
        &self,
        py: Python<'py>,
        id: i64,
        outcome: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (consumer, outcome) = (Arc::clone(&self.inner), outcome.to_owned());
        spawn(py, async move { consumer.archive(id, &outcome).await })
    }

    /// Archives held jobs in one round trip (lost leases raise `LeaseLost`, the others are
    /// archived).
    #[pyo3(signature = (ids, outcome="completed"))]
    fn archive_batch(&self, py: Python<'_>, ids: Vec<i64>, outcome: &str) -> PyResult<()> {
        let (consumer, outcome) = (Arc::clone(&self.inner), outcome.to_owned());
        block_on(
            py,
            async move { consumer.archive_batch(&ids, &outcome).await },
        )
    }

    /// `archive_batch`, awaitable.
    #[pyo3(signature = (ids, outcome="completed"))]
    fn archive_batch_async<'py>(
        &self,
        py: Python<'py>,
        ids: Vec<i64>,
        outcome: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (consumer, outcome) = (Arc::clone(&self.inner), outcome.to_owned());
        spawn(
            py,
            async move { consumer.archive_batch(&ids, &outcome).await },
        )
    }

    /// Deletes a held job without history (an ack).
    fn delete(&self, py: Python<'_>, id: i64) -> PyResult<()> {
        block_on(py, self.deleting(id))
    }

    /// `delete`, awaitable.
    fn delete_async<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyAny>> {
        spawn(py, self.deleting(id))
    }

    /// Hands a held job back to be retried after `delay` seconds (or to the dead letters
    /// once out of attempts); returns `True` if it will be retried.
    #[pyo3(signature = (id, delay=0.0, error=None))]
    fn nack(&self, py: Python<'_>, id: i64, delay: f64, error: Option<String>) -> PyResult<bool> {
        block_on(py, self.nacking(id, delay, error)?)
    }

    /// `nack`, awaitable.
    #[pyo3(signature = (id, delay=0.0, error=None))]
    fn nack_async<'py>(
        &self,
        py: Python<'py>,
        id: i64,
        delay: f64,
        error: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        spawn(py, self.nacking(id, delay, error)?)
    }

    /// Extends the lease on a held job to `seconds` from now; returns the new expiry.
    fn extend(&self, py: Python<'_>, id: i64, seconds: f64) -> PyResult<DateTime<Utc>> {
        block_on(py, self.extending(id, seconds)?)
    }

    /// `extend`, awaitable.
    fn extend_async<'py>(
        &self,
        py: Python<'py>,
        id: i64,
        seconds: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        spawn(py, self.extending(id, seconds)?)
    }
}

impl PyConsumer {
    fn deleting(&self, id: i64) -> impl Future<Output = pgqrs::Result<()>> + Send + 'static {
        let consumer = Arc::clone(&self.inner);
        async move { consumer.delete(id).await }
    }

    fn nacking(
        &self,
        id: i64,
        delay: f64,
        error: Option<String>,
    ) -> PyResult<impl Future<Output = pgqrs::Result<bool>> + Send + 'static> {
        let consumer = Arc::clone(&self.inner);
        let delay = seconds_to_duration(delay)?;
        Ok(async move {
            let nacked = match error {
                Some(error) => consumer.nack_with_error(id, delay, &error).await?,
                None => consumer.nack(id, delay).await?,
            };
            Ok(matches!(nacked, pgqrs::Nacked::Retrying { .. }))
        })
    }

    fn extending(
        &self,
        id: i64,
        seconds: f64,
    ) -> PyResult<impl Future<Output = pgqrs::Result<DateTime<Utc>>> + Send + 'static> {
        let consumer = Arc::clone(&self.inner);
        let lease = seconds_to_duration(seconds)?;
        Ok(async move { consumer.extend(id, lease).await })
    }
}

/// The Rust side of the Python benchmark: enqueues `jobs` payloads in batches of `batch`
/// and drains them with the same calls, in Rust; returns (enqueue jobs/s, drain jobs/s).
#[pyfunction]
pub(crate) fn bench_rust(
    py: Python<'_>,
    config: &Bound<'_, PyAny>,
    queue: String,
    payload: &Bound<'_, PyAny>,
    jobs: usize,
    batch: usize,
) -> PyResult<(f64, f64)> {
    let config = config_of(config)?;
    let payload = to_json(payload)?;
    block_on(py, async move {
        let producer = Producer::new(&config, &queue).await?;
        let payloads = vec![payload; batch.max(1)];
        let start = Instant::now();
        for _ in 0..jobs / batch.max(1) {
            producer.enqueue_batch(&payloads).await?;
        }
        let enqueue = jobs as f64 / start.elapsed().as_secs_f64();
        let consumer = Consumer::new(&config, &queue).await?;
        let start = Instant::now();
        let mut drained = 0;
        loop {
            let claimed = consumer.dequeue_batch(batch.max(1)).await?;
            if claimed.is_empty() {
                break;
            }
            let ids: Vec<i64> = claimed.iter().map(|job| job.id).collect();
            consumer.archive_batch(&ids, "completed").await?;
            drained += ids.len();
        }
        Ok((enqueue, drained as f64 / start.elapsed().as_secs_f64()))
    })
}
