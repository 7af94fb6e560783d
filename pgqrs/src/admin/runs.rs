//! Operator views of workflow runs: list and show.

use chrono::{DateTime, Utc};

use super::Admin;
use crate::db;
use crate::workflow::RunStatus;
use crate::{Error, Result};

/// Which runs [`Admin::list_runs`] returns: the most recent first, up to `limit`.
///
/// ```
/// use pgqrs::{RunFilter, workflow::RunStatus};
/// let failed = RunFilter::builder().status(RunStatus::Failed).workflow("report").limit(20).build();
/// assert_eq!(RunFilter::default().limit, 50);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, typed_builder::TypedBuilder)]
#[non_exhaustive]
pub struct RunFilter {
    /// Only runs with this status.
    #[builder(default, setter(strip_option))]
    pub status: Option<RunStatus>,
    /// Only runs of this workflow.
    #[builder(default, setter(strip_option, into))]
    pub workflow: Option<String>,
    /// At most this many runs.
    #[builder(default = 50)]
    pub limit: usize,
}

impl Default for RunFilter {
    fn default() -> Self {
        RunFilter::builder().build()
    }
}

/// A workflow run as stored in `pgqrs.runs`.
///
/// ```no_run
/// # async fn demo(admin: pgqrs::Admin) -> pgqrs::Result<()> {
/// let run = admin.run(7).await?;
/// println!("run {} of `{}` is {}", run.id, run.workflow, run.status);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RunInfo {
    /// The run's id.
    pub id: i64,
    /// The workflow's name.
    pub workflow: String,
    /// The workflow version recorded at creation (empty when none was declared).
    pub version: String,
    /// Where the run is in its life.
    pub status: RunStatus,
    /// The workflow's input.
    pub input: serde_json::Value,
    /// The workflow's output, once it succeeded.
    pub output: Option<serde_json::Value>,
    /// The workflow's error, once it failed.
    pub error: Option<String>,
    /// When a sleeping run wakes up.
    pub wake_at: Option<DateTime<Utc>>,
    /// The signal a waiting run waits for.
    pub waiting_for: Option<String>,
    /// When the run was created.
    pub created_at: DateTime<Utc>,
    /// When its row last changed.
    pub updated_at: DateTime<Utc>,
    /// When it succeeded, failed or was cancelled.
    pub finished_at: Option<DateTime<Utc>>,
}

/// A completed step of a run, as recorded.
///
/// ```no_run
/// # async fn demo(admin: pgqrs::Admin) -> pgqrs::Result<()> {
/// for step in admin.run_steps(7).await? {
///     println!("#{} {} -> {}", step.seq, step.name, step.output);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StepInfo {
    /// Its call sequence number in the run.
    pub seq: i32,
    /// The step's name.
    pub name: String,
    /// Its input, as recorded.
    pub input: serde_json::Value,
    /// Its output, as recorded.
    pub output: serde_json::Value,
    /// How many times its body ran before it completed.
    pub attempts: i32,
    /// When it was recorded.
    pub completed_at: DateTime<Utc>,
}

impl TryFrom<db::run::RunRow> for RunInfo {
    type Error = Error;

    fn try_from(row: db::run::RunRow) -> Result<Self> {
        Ok(RunInfo {
            id: row.id,
            workflow: row.workflow,
            version: row.version,
            status: row.status.parse()?,
            input: row.input,
            output: row.output,
            error: row.error,
            wake_at: row.wake_at,
            waiting_for: row.waiting_for,
            created_at: row.created_at,
            updated_at: row.updated_at,
            finished_at: row.finished_at,
        })
    }
}

impl From<db::step::StepRow> for StepInfo {
    fn from(row: db::step::StepRow) -> Self {
        StepInfo {
            seq: row.seq,
            name: row.name,
            input: row.input,
            output: row.output,
            attempts: row.attempts,
            completed_at: row.completed_at,
        }
    }
}

impl Admin {
    /// Workflow runs, the most recent first, filtered by status and workflow.
    ///
    /// ```no_run
    /// # async fn demo(admin: pgqrs::Admin) -> pgqrs::Result<()> {
    /// use pgqrs::{RunFilter, workflow::RunStatus};
    /// let failed = admin.list_runs(&RunFilter::builder().status(RunStatus::Failed).build()).await?;
    /// for run in failed {
    ///     println!("run {}: {}", run.id, run.error.unwrap_or_default());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunInfo>> {
        let status = filter.status.map(|s| s.to_string());
        let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
        let rows = db::run::run_list(
            &self.pool,
            status.as_deref(),
            filter.workflow.as_deref(),
            limit,
        )
        .await?;
        rows.into_iter().map(RunInfo::try_from).collect()
    }

    /// One run by id; [`Error::RunNotFound`] if there is none.
    ///
    /// ```no_run
    /// # async fn demo(admin: pgqrs::Admin) -> pgqrs::Result<()> {
    /// let run = admin.run(7).await?;
    /// if let Some(signal) = &run.waiting_for {
    ///     println!("run 7 waits for the signal {signal:?}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn run(&self, run_id: i64) -> Result<RunInfo> {
        db::run::run_get(&self.pool, run_id)
            .await?
            .ok_or(Error::RunNotFound { run_id })?
            .try_into()
    }

    /// The recorded (completed) steps of a run, by sequence number; empty for a run that
    /// has recorded none, or does not exist.
    ///
    /// ```no_run
    /// # async fn demo(admin: pgqrs::Admin) -> pgqrs::Result<()> {
    /// let steps = admin.run_steps(7).await?;
    /// println!("run 7 has recorded {} steps", steps.len());
    /// # Ok(()) }
    /// ```
    pub async fn run_steps(&self, run_id: i64) -> Result<Vec<StepInfo>> {
        let rows = db::step::step_list(&self.pool, run_id).await?;
        Ok(rows.into_iter().map(StepInfo::from).collect())
    }
}
