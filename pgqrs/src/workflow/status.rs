//! Run status, run handles, and the typed run states with the moves each state allows.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::db::Db;
use serde::de::DeserializeOwned;

use super::PoolSource;
use crate::db;
use crate::{Error, Result};

/// Where a run is in its life. Transitions are enforced in SQL (a trigger on
/// `pgqrs.runs`): `pending → running → succeeded | failed | cancelled`, `running ⇄
/// sleeping | waiting`, any active state `→ cancelled`, and `failed | cancelled → pending`
/// (retry).
///
/// ```
/// use pgqrs::workflow::RunStatus;
/// assert!(RunStatus::Succeeded.is_terminal());
/// assert_eq!("sleeping".parse::<RunStatus>()?, RunStatus::Sleeping);
/// # Ok::<(), pgqrs::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunStatus {
    /// Created, waiting for an executor.
    Pending,
    /// An executor holds it.
    Running,
    /// In a durable sleep.
    Sleeping,
    /// Waiting for a signal.
    Waiting,
    /// Done, with an output.
    Succeeded,
    /// Done, with an error.
    Failed,
    /// Stopped by `cancel`.
    Cancelled,
}

impl RunStatus {
    /// `true` for succeeded, failed and cancelled.
    ///
    /// ```
    /// assert!(!pgqrs::workflow::RunStatus::Waiting.is_terminal());
    /// ```
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
        )
    }

    fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::Sleeping => "sleeping",
            RunStatus::Waiting => "waiting",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "pending" => RunStatus::Pending,
            "running" => RunStatus::Running,
            "sleeping" => RunStatus::Sleeping,
            "waiting" => RunStatus::Waiting,
            "succeeded" => RunStatus::Succeeded,
            "failed" => RunStatus::Failed,
            "cancelled" => RunStatus::Cancelled,
            other => return Err(Error::Internal(format!("unknown run status {other:?}"))),
        })
    }
}

/// A reference to a run by id: ask its status, wait for its result, cancel it.
///
/// ```no_run
/// # async fn demo(pool: sqlx::PgPool, run_id: i64) -> pgqrs::Result<()> {
/// let handle = pgqrs::workflow::RunHandle::new(&pool, run_id).await?;
/// let report: String = handle.result().await?; // waits until the run ends
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RunHandle {
    pool: Db,
    run_id: i64,
}

impl RunHandle {
    pub(crate) fn from_parts(pool: Db, run_id: i64) -> Self {
        RunHandle { pool, run_id }
    }

    /// A handle on run `run_id` (not checked until used).
    ///
    /// ```no_run
    /// # async fn demo(config: pgqrs::Config) -> pgqrs::Result<()> {
    /// let handle = pgqrs::workflow::RunHandle::new(&config, 42).await?;
    /// # Ok(()) }
    /// ```
    pub async fn new(source: impl PoolSource, run_id: i64) -> Result<Self> {
        let (pool, _) = source.resolve().await?;
        Ok(RunHandle { pool, run_id })
    }

    /// The run's id.
    ///
    /// ```no_run
    /// # fn show(handle: pgqrs::workflow::RunHandle) { println!("run {}", handle.run_id()); }
    /// ```
    pub fn run_id(&self) -> i64 {
        self.run_id
    }

    /// The run's current status.
    ///
    /// ```no_run
    /// # async fn demo(handle: pgqrs::workflow::RunHandle) -> pgqrs::Result<()> {
    /// println!("{}", handle.status().await?);
    /// # Ok(()) }
    /// ```
    pub async fn status(&self) -> Result<RunStatus> {
        Ok(self.state().await?.status())
    }

    /// The run's current state, typed: each state offers only the moves it allows
    /// (`cancel` on an active run, `output` on a succeeded one, `retry` on a failed or
    /// cancelled one).
    ///
    /// ```no_run
    /// # async fn demo(handle: pgqrs::workflow::RunHandle) -> pgqrs::Result<()> {
    /// use pgqrs::workflow::RunState;
    /// match handle.state().await? {
    ///     RunState::Active(run) => run.cancel().await?,
    ///     RunState::Succeeded(run) => println!("{}", run.output::<String>()?),
    ///     RunState::Failed(run) => { run.retry().await?; }
    ///     RunState::Cancelled(_) => {}
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn state(&self) -> Result<RunState> {
        let row =
            db::run::run_status(&self.pool, self.run_id)
                .await?
                .ok_or(Error::RunNotFound {
                    run_id: self.run_id,
                })?;
        let status: RunStatus = row.status.parse()?;
        let handle = self.clone();
        Ok(match status {
            RunStatus::Succeeded => RunState::Succeeded(SucceededRun {
                run_id: self.run_id,
                output: row.output.unwrap_or_else(|| "null".into()),
            }),
            RunStatus::Failed => RunState::Failed(FailedRun {
                handle,
                error: row.error.unwrap_or_default(),
            }),
            RunStatus::Cancelled => RunState::Cancelled(CancelledRun { handle }),
            active => RunState::Active(ActiveRun {
                handle,
                status: active,
            }),
        })
    }

    /// Waits until the run ends and returns its output, or [`Error::WorkflowFailed`] /
    /// [`Error::Cancelled`].
    ///
    /// ```no_run
    /// # async fn demo(handle: pgqrs::workflow::RunHandle) -> pgqrs::Result<()> {
    /// let lines: String = handle.result().await?;
    /// # Ok(()) }
    /// ```
    pub async fn result<T: DeserializeOwned>(&self) -> Result<T> {
        let mut pause = Duration::from_millis(10);
        loop {
            match self.state().await? {
                RunState::Succeeded(run) => return run.output(),
                RunState::Failed(run) => {
                    return Err(Error::WorkflowFailed {
                        run_id: self.run_id,
                        error: run.error,
                    });
                }
                RunState::Cancelled(_) => {
                    return Err(Error::Cancelled {
                        run_id: self.run_id,
                    });
                }
                RunState::Active(_) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
            }
        }
    }

    /// Cancels the run if it is active; [`Error::IllegalTransition`] if it already ended.
    /// An executor in the middle of it loses its lease: its next step is not recorded.
    ///
    /// ```no_run
    /// # async fn demo(handle: pgqrs::workflow::RunHandle) -> pgqrs::Result<()> {
    /// handle.cancel().await?;
    /// # Ok(()) }
    /// ```
    pub async fn cancel(&self) -> Result<()> {
        let before =
            db::run::run_cancel(&self.pool, self.run_id)
                .await?
                .ok_or(Error::RunNotFound {
                    run_id: self.run_id,
                })?;
        let from: RunStatus = before.parse()?;
        if from.is_terminal() {
            return Err(Error::IllegalTransition {
                run_id: self.run_id,
                from,
                to: RunStatus::Cancelled,
            });
        }
        Ok(())
    }
}

/// A run's state with the moves it allows; see [`RunHandle::state`].
#[derive(Debug)]
pub enum RunState {
    /// Pending, running, sleeping or waiting: it can be cancelled.
    Active(ActiveRun),
    /// Ended with an output.
    Succeeded(SucceededRun),
    /// Ended with an error: it can be retried.
    Failed(FailedRun),
    /// Cancelled: it can be retried.
    Cancelled(CancelledRun),
}

impl RunState {
    /// The plain status.
    ///
    /// ```no_run
    /// # async fn demo(handle: pgqrs::workflow::RunHandle) -> pgqrs::Result<()> {
    /// let status = handle.state().await?.status();
    /// # Ok(()) }
    /// ```
    pub fn status(&self) -> RunStatus {
        match self {
            RunState::Active(run) => run.status,
            RunState::Succeeded(_) => RunStatus::Succeeded,
            RunState::Failed(_) => RunStatus::Failed,
            RunState::Cancelled(_) => RunStatus::Cancelled,
        }
    }
}

/// A run that has not ended.
#[derive(Debug)]
pub struct ActiveRun {
    handle: RunHandle,
    status: RunStatus,
}

impl ActiveRun {
    /// Pending, running, sleeping or waiting.
    ///
    /// ```no_run
    /// # fn show(run: pgqrs::workflow::ActiveRun) { println!("{}", run.status()); }
    /// ```
    pub fn status(&self) -> RunStatus {
        self.status
    }

    /// Cancels the run (it may have ended meanwhile: then [`Error::IllegalTransition`]).
    ///
    /// ```no_run
    /// # async fn demo(run: pgqrs::workflow::ActiveRun) -> pgqrs::Result<()> {
    /// run.cancel().await?;
    /// # Ok(()) }
    /// ```
    pub async fn cancel(self) -> Result<()> {
        self.handle.cancel().await
    }
}

/// A run that ended with an output.
#[derive(Debug)]
pub struct SucceededRun {
    run_id: i64,
    output: String,
}

impl SucceededRun {
    /// The output, decoded as `T`.
    ///
    /// ```no_run
    /// # fn show(run: pgqrs::workflow::SucceededRun) -> pgqrs::Result<()> {
    /// let report: String = run.output()?;
    /// # Ok(()) }
    /// ```
    pub fn output<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(&self.output).map_err(|err| Error::SchemaMismatch {
            run_id: self.run_id,
            step: "output".into(),
            seq: -1,
            detail: format!(
                "the workflow output does not decode as `{}`: {err}",
                std::any::type_name::<T>()
            ),
        })
    }
}

/// A run that ended with an error.
#[derive(Debug)]
pub struct FailedRun {
    handle: RunHandle,
    error: String,
}

impl FailedRun {
    /// The workflow's error, as text.
    ///
    /// ```no_run
    /// # fn show(run: pgqrs::workflow::FailedRun) { println!("{}", run.error()); }
    /// ```
    pub fn error(&self) -> &str {
        &self.error
    }

    /// Makes the run pending again; a workflow worker resumes it after its last recorded
    /// step.
    ///
    /// ```no_run
    /// # async fn demo(run: pgqrs::workflow::FailedRun) -> pgqrs::Result<()> {
    /// run.retry().await?;
    /// # Ok(()) }
    /// ```
    pub async fn retry(self) -> Result<RunHandle> {
        retry(self.handle).await
    }
}

/// A cancelled run.
#[derive(Debug)]
pub struct CancelledRun {
    handle: RunHandle,
}

impl CancelledRun {
    /// Makes the run pending again, as [`FailedRun::retry`].
    ///
    /// ```no_run
    /// # async fn demo(run: pgqrs::workflow::CancelledRun) -> pgqrs::Result<()> {
    /// run.retry().await?;
    /// # Ok(()) }
    /// ```
    pub async fn retry(self) -> Result<RunHandle> {
        retry(self.handle).await
    }
}

async fn retry(handle: RunHandle) -> Result<RunHandle> {
    let workflow = db::run::run_workflow(&handle.pool, handle.run_id)
        .await?
        .ok_or(Error::RunNotFound {
            run_id: handle.run_id,
        })?;
    let queue = super::ensure_queue(&handle.pool, &workflow).await?;
    let before = db::run::run_retry(&handle.pool, handle.run_id, queue)
        .await?
        .ok_or(Error::RunNotFound {
            run_id: handle.run_id,
        })?;
    let from: RunStatus = before.parse()?;
    if !matches!(from, RunStatus::Failed | RunStatus::Cancelled) {
        return Err(Error::IllegalTransition {
            run_id: handle.run_id,
            from,
            to: RunStatus::Pending,
        });
    }
    Ok(handle)
}
