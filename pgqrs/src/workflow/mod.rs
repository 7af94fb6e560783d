//! Durable workflows: async functions whose steps are recorded in Postgres, so that a run
//! survives crashes and resumes after its last completed step.
//!
//! ```no_run
//! use pgqrs::workflow::Workflow;
//! use pgqrs::{pgqrs_step, pgqrs_workflow};
//!
//! #[pgqrs_step]
//! async fn count_lines(ctx: &Workflow, text: &str) -> Result<i32, anyhow::Error> {
//!     Ok(text.lines().count() as i32)
//! }
//!
//! #[pgqrs_workflow]
//! async fn report(ctx: &Workflow, text: &str) -> Result<String, anyhow::Error> {
//!     let lines = count_lines(ctx, text).await?;
//!     Ok(format!("{lines} lines"))
//! }
//!
//! # async fn demo(pool: sqlx::PgPool) -> anyhow::Result<()> {
//! let text = "a\nb";
//! let workflow = Workflow::create(&pool, "report", &text).await?;
//! assert_eq!(report(&workflow, text).await?, "2 lines");
//! # Ok(()) }
//! ```
//!
//! **What is guaranteed.** A step is identified by (run, step name, call sequence), so
//! calling one step twice with different inputs makes two steps. Once a step's output is
//! recorded, the step body never runs again for that run: a resumed run gets the recorded
//! output. Recording is fenced by the run's lease, so two executors racing on a run cannot
//! both record a step. A step interrupted before its output was recorded (a crash, a lost
//! lease) runs again when the run resumes: step side effects are at least once, make them
//! idempotent.

mod context;
mod exec;
mod handler;
mod lifecycle;
mod observe;
mod status;
mod steps;
mod takeover;

use std::time::Duration;

use sqlx::PgPool;

pub use context::Workflow;
#[doc(hidden)]
pub use exec::{__assert_result, __typed, StepMeta};
pub use exec::{StepError, StepOutput, StepResult, WorkflowFn};
pub(crate) use handler::WorkflowHandler;
#[doc(hidden)]
pub use lifecycle::Begin;
pub use status::{
    ActiveRun, CancelledRun, FailedRun, RunHandle, RunState, RunStatus, SucceededRun,
};
#[doc(hidden)]
pub use steps::{PendingStep, StepCall};

use crate::{
    Config, DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_VISIBILITY_TIMEOUT, Db, Error, QueueName, Result, db,
};

/// Where workflows find Postgres: a pool (owned or borrowed) or a [`Config`].
///
/// ```no_run
/// # async fn demo(pool: sqlx::PgPool, config: pgqrs::Config) -> pgqrs::Result<()> {
/// use pgqrs::workflow::Workflow;
/// Workflow::create(&pool, "report", &"x").await?;
/// Workflow::create(&config, "report", &"x").await?;
/// # Ok(()) }
/// ```
pub trait PoolSource {
    /// The pool, and the lease an executor holds a run under.
    fn resolve(self) -> impl Future<Output = Result<(Db, Duration)>> + Send;

    /// The largest serialized workflow input or signal accepted: the config's
    /// [`max_payload_bytes`](Config::max_payload_bytes), or the default for a bare pool.
    fn max_payload_bytes(&self) -> usize {
        DEFAULT_MAX_PAYLOAD_BYTES
    }
}

impl PoolSource for PgPool {
    async fn resolve(self) -> Result<(Db, Duration)> {
        Ok((Db::from(self), DEFAULT_VISIBILITY_TIMEOUT))
    }
}

impl PoolSource for &PgPool {
    async fn resolve(self) -> Result<(Db, Duration)> {
        Ok((Db::from(self.clone()), DEFAULT_VISIBILITY_TIMEOUT))
    }
}

impl PoolSource for Db {
    async fn resolve(self) -> Result<(Db, Duration)> {
        Ok((self, DEFAULT_VISIBILITY_TIMEOUT))
    }
}

impl PoolSource for &Db {
    async fn resolve(self) -> Result<(Db, Duration)> {
        Ok((self.clone(), DEFAULT_VISIBILITY_TIMEOUT))
    }
}

impl PoolSource for &Config {
    async fn resolve(self) -> Result<(Db, Duration)> {
        Ok((self.db().await?, self.get_visibility_timeout()))
    }

    fn max_payload_bytes(&self) -> usize {
        self.get_max_payload_bytes()
    }
}

impl PoolSource for Config {
    async fn resolve(self) -> Result<(Db, Duration)> {
        (&self).resolve().await
    }

    fn max_payload_bytes(&self) -> usize {
        self.get_max_payload_bytes()
    }
}

/// Longest workflow name: its queue `wf-<name>` must be a valid queue name.
const MAX_WORKFLOW_NAME_LEN: usize = 60;

/// The queue that drives runs of `workflow`.
pub(crate) fn queue_name(workflow: &str) -> Result<String> {
    let valid = workflow.len() <= MAX_WORKFLOW_NAME_LEN && QueueName::new(workflow).is_ok();
    if !valid {
        return Err(Error::InvalidArgument(format!(
            "invalid workflow name {:?}: use 1 to {MAX_WORKFLOW_NAME_LEN} characters from a-z, 0-9, '_' and '-'",
            workflow.chars().take(64).collect::<String>()
        )));
    }
    Ok(format!("wf-{workflow}"))
}

/// The id of the queue that drives runs of `workflow`, created if needed.
pub(crate) async fn ensure_queue(pool: &Db, workflow: &str) -> Result<i32> {
    let name = queue_name(workflow)?;
    for _ in 0..3 {
        if let Some(queue) = db::queue::queue_get(pool, &name).await? {
            return Ok(queue.id);
        }
        db::queue::queue_insert(pool, &name, db::run::WORKFLOW_QUEUE_MAX_ATTEMPTS).await?;
    }
    Err(Error::QueueNotFound { queue: name })
}
