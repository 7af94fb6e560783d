//! `Admin`: installation, queues, and the entry points of workflows.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use pgqrs::workflow::{RunHandle, RunState, RunStatus, Workflow};
use pgqrs::{Admin, QueueOptions};
use pyo3::prelude::*;

use crate::errors::InvalidArgument;
use crate::json::{from_json, to_json_value};
use crate::queue::config_of;
use crate::runtime::{block_on, spawn, spawn_with};
use crate::workflow::PyWorkflow;

/// A queue.
#[pyclass(name = "QueueInfo", module = "pgqrs", frozen, get_all)]
pub(crate) struct PyQueueInfo {
    name: String,
    max_attempts: i32,
    paused: bool,
    global_concurrency: Option<i32>,
    created_at: DateTime<Utc>,
}

impl From<pgqrs::QueueInfo> for PyQueueInfo {
    fn from(q: pgqrs::QueueInfo) -> Self {
        PyQueueInfo {
            name: q.name.to_string(),
            max_attempts: q.max_attempts,
            paused: q.paused,
            global_concurrency: q.global_concurrency,
            created_at: q.created_at,
        }
    }
}

#[pymethods]
impl PyQueueInfo {
    fn __repr__(&self) -> String {
        format!(
            "QueueInfo(name={:?}, max_attempts={}, paused={})",
            self.name, self.max_attempts, self.paused
        )
    }
}

/// A snapshot of a queue's backlog.
#[pyclass(name = "QueueStats", module = "pgqrs", frozen, get_all)]
pub(crate) struct PyQueueStats {
    queue: String,
    ready: i64,
    leased: i64,
    delayed: i64,
    dead: i64,
    /// Seconds the oldest ready job has waited, if any is ready.
    oldest_ready_age: Option<f64>,
}

#[pymethods]
impl PyQueueStats {
    fn __repr__(&self) -> String {
        format!(
            "QueueStats(queue={:?}, ready={}, leased={}, delayed={}, dead={})",
            self.queue, self.ready, self.leased, self.delayed, self.dead
        )
    }
}

/// A job that failed for good.
#[pyclass(name = "DeadLetter", module = "pgqrs", frozen, get_all)]
pub(crate) struct PyDeadLetter {
    id: i64,
    payload: Py<PyAny>,
    attempts: i32,
    reason: String,
    failed_at: DateTime<Utc>,
}

/// Installs the schema, manages queues, and creates workflow runs.
///
/// `Admin(config)` or `Admin(dsn, None)` (the second argument, the schema, can only be
/// `None` or `"pgqrs"`).
#[pyclass(name = "Admin", module = "pgqrs", frozen, subclass)]
pub(crate) struct PyAdmin {
    config: pgqrs::Config,
}

impl PyAdmin {
    fn admin(&self) -> impl Future<Output = pgqrs::Result<Admin>> + Send + 'static {
        let config = self.config.clone();
        async move { Admin::new(&config).await }
    }
}

#[pymethods]
impl PyAdmin {
    #[new]
    #[pyo3(signature = (config, schema=None))]
    fn new(config: &Bound<'_, PyAny>, schema: Option<String>) -> PyResult<Self> {
        if schema.as_deref().is_some_and(|s| s != "pgqrs") {
            return Err(InvalidArgument::new_err(
                "pgqrs lives in the schema `pgqrs`; pass None as the schema",
            ));
        }
        Ok(PyAdmin {
            config: config_of(config)?,
        })
    }

    /// Creates the schema or applies pending migrations (idempotent).
    fn install(&self, py: Python<'_>) -> PyResult<()> {
        let admin = self.admin();
        block_on(py, async move { admin.await?.install().await })
    }

    /// `install`, awaitable.
    fn install_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let admin = self.admin();
        spawn(py, async move { admin.await?.install().await })
    }

    /// Raises `NotInstalled` or `SchemaVersionError` unless the schema is current.
    fn verify(&self, py: Python<'_>) -> PyResult<()> {
        let admin = self.admin();
        block_on(py, async move { admin.await?.verify().await })
    }

    /// Creates a queue, or returns the existing one of that name.
    #[pyo3(signature = (name, *, max_attempts=None))]
    fn create_queue(
        &self,
        py: Python<'_>,
        name: String,
        max_attempts: Option<i32>,
    ) -> PyResult<PyQueueInfo> {
        let admin = self.admin();
        let mut options = QueueOptions::default();
        if let Some(max_attempts) = max_attempts {
            options.max_attempts = max_attempts;
        }
        let queue = block_on(py, async move {
            admin.await?.create_queue_with(&name, options).await
        })?;
        Ok(queue.into())
    }

    /// `create_queue`, awaitable.
    fn create_queue_async<'py>(
        &self,
        py: Python<'py>,
        name: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let admin = self.admin();
        spawn(py, async move {
            let queue = admin.await?.create_queue(&name).await?;
            Ok(PyQueueInfo::from(queue))
        })
    }

    /// All queues.
    fn list_queues(&self, py: Python<'_>) -> PyResult<Vec<PyQueueInfo>> {
        let admin = self.admin();
        let queues = block_on(py, async move { admin.await?.list_queues().await })?;
        Ok(queues.into_iter().map(PyQueueInfo::from).collect())
    }

    /// Ready, leased, delayed and dead counts of a queue.
    fn queue_stats(&self, py: Python<'_>, name: String) -> PyResult<PyQueueStats> {
        let admin = self.admin();
        let stats = block_on(py, async move { admin.await?.queue_stats(&name).await })?;
        Ok(PyQueueStats {
            queue: stats.queue.to_string(),
            ready: stats.ready,
            leased: stats.leased,
            delayed: stats.delayed,
            dead: stats.dead,
            oldest_ready_age: stats.oldest_ready_age.map(|age| age.as_secs_f64()),
        })
    }

    /// Deletes a queue with its jobs, archive and dead letters.
    fn delete_queue(&self, py: Python<'_>, name: String) -> PyResult<()> {
        let admin = self.admin();
        block_on(py, async move { admin.await?.delete_queue(&name).await })
    }

    /// Deletes the waiting and leased jobs of a queue; returns how many.
    fn purge_queue(&self, py: Python<'_>, name: String) -> PyResult<u64> {
        let admin = self.admin();
        block_on(py, async move { admin.await?.purge_queue(&name).await })
    }

    /// Stops consumers and workers from claiming from the queue.
    fn pause_queue(&self, py: Python<'_>, name: String) -> PyResult<()> {
        let admin = self.admin();
        block_on(py, async move { admin.await?.pause_queue(&name).await })
    }

    /// Resumes a paused queue.
    fn resume_queue(&self, py: Python<'_>, name: String) -> PyResult<()> {
        let admin = self.admin();
        block_on(py, async move { admin.await?.resume_queue(&name).await })
    }

    /// Up to `limit` dead letters of the queue.
    #[pyo3(signature = (name, limit=100))]
    fn dead_letters(
        &self,
        py: Python<'_>,
        name: String,
        limit: usize,
    ) -> PyResult<Vec<PyDeadLetter>> {
        let admin = self.admin();
        let dead = block_on(
            py,
            async move { admin.await?.dead_letters(&name, limit).await },
        )?;
        dead.into_iter()
            .map(|d| {
                Ok(PyDeadLetter {
                    id: d.id,
                    payload: from_json(py, &d.payload)?,
                    attempts: d.attempts,
                    reason: d.reason,
                    failed_at: d.failed_at,
                })
            })
            .collect()
    }

    /// Moves dead letters back into their queue (all of them when `ids` is None).
    #[pyo3(signature = (name, ids=None))]
    fn redrive(&self, py: Python<'_>, name: String, ids: Option<Vec<i64>>) -> PyResult<Vec<i64>> {
        let admin = self.admin();
        block_on(py, async move {
            let admin = admin.await?;
            match ids {
                Some(ids) => admin.redrive(&name, &ids).await,
                None => admin.redrive_all(&name).await,
            }
        })
    }

    /// Creates a run of workflow `name` with `input`, to be executed by this process:
    /// `ctx = await admin.create_workflow("pipeline", input)`, then
    /// `await pipeline(ctx, input)`.
    fn create_workflow<'py>(
        &self,
        py: Python<'py>,
        name: String,
        input: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let input = to_json_value(input)?;
        let config = self.config.clone();
        spawn(py, async move {
            let workflow = Workflow::create(&config, &name, &input).await?;
            Ok(PyWorkflow::new(Arc::new(workflow), input))
        })
    }

    /// Creates a pending run of workflow `name` with `input` for `run_workflows` (in any
    /// process) to execute; returns its id.
    fn enqueue_workflow(
        &self,
        py: Python<'_>,
        name: String,
        input: &Bound<'_, PyAny>,
    ) -> PyResult<i64> {
        let input = to_json_value(input)?;
        let config = self.config.clone();
        block_on(py, async move {
            Ok(Workflow::enqueue(&config, &name, &input).await?.run_id())
        })
    }

    /// Takes over run `run_id` to execute it here: a run whose executor died (its lease
    /// ran out) or that waits for one. Call the workflow function with the context to
    /// resume it after its last recorded step.
    fn resume_workflow<'py>(&self, py: Python<'py>, run_id: i64) -> PyResult<Bound<'py, PyAny>> {
        let config = self.config.clone();
        spawn(py, async move {
            let workflow = Workflow::take_over(&config, run_id).await?;
            let input = workflow.input::<serde_json::Value>()?;
            Ok(PyWorkflow::new(Arc::new(workflow), input))
        })
    }

    /// Claims the next runnable run of workflow `name` (new, woken, or left behind by a
    /// dead executor) to execute here, or `None`: `ctx = await admin.next_workflow("p")`,
    /// then `await p(ctx, ctx.input)`. `pgqrs.run_workflows` loops over this.
    fn next_workflow<'py>(&self, py: Python<'py>, name: String) -> PyResult<Bound<'py, PyAny>> {
        let config = self.config.clone();
        spawn(py, async move {
            let Some(workflow) = Workflow::claim_next(&config, &name).await? else {
                return Ok(None);
            };
            let input = workflow.input::<serde_json::Value>()?;
            Ok(Some(PyWorkflow::new(Arc::new(workflow), input)))
        })
    }

    /// The status of run `run_id` ("pending", "running", ..., "succeeded").
    fn workflow_status(&self, py: Python<'_>, run_id: i64) -> PyResult<String> {
        let config = self.config.clone();
        block_on(py, async move {
            let handle = RunHandle::new(&config, run_id).await?;
            Ok(handle.status().await?.to_string())
        })
    }

    /// Cancels an active run (`IllegalTransition` if it ended); an executor in the middle
    /// of it records nothing more.
    fn cancel_workflow(&self, py: Python<'_>, run_id: i64) -> PyResult<()> {
        let config = self.config.clone();
        block_on(py, async move {
            RunHandle::new(&config, run_id).await?.cancel().await
        })
    }

    /// Makes a failed or cancelled run pending again (`IllegalTransition` otherwise): the
    /// next claim resumes it after its last recorded step.
    fn retry_workflow(&self, py: Python<'_>, run_id: i64) -> PyResult<()> {
        let config = self.config.clone();
        block_on(py, async move {
            let state = RunHandle::new(&config, run_id).await?.state().await?;
            match state {
                RunState::Failed(run) => run.retry().await.map(drop),
                RunState::Cancelled(run) => run.retry().await.map(drop),
                other => Err(pgqrs::Error::IllegalTransition {
                    run_id,
                    from: other.status(),
                    to: RunStatus::Pending,
                }),
            }
        })
    }

    /// Waits for run `run_id` to end and returns its output.
    fn workflow_result<'py>(&self, py: Python<'py>, run_id: i64) -> PyResult<Bound<'py, PyAny>> {
        let config = self.config.clone();
        let result = async move {
            let handle = RunHandle::new(&config, run_id).await?;
            handle.result::<serde_json::Value>().await
        };
        spawn_with(py, result, |py, output| from_json(py, &output))
    }

    /// Sends signal `name` with `value` to run `run_id`.
    fn send_signal<'py>(
        &self,
        py: Python<'py>,
        run_id: i64,
        name: String,
        value: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let value = to_json_value(value)?;
        let config = self.config.clone();
        spawn(py, async move {
            Workflow::send(&config, run_id, &name, &value).await
        })
    }
}
