//! Operator views and actions on single jobs: show, retry, cancel.

use std::fmt;

use chrono::{DateTime, Utc};

use super::Admin;
use crate::db;
use crate::{Error, QueueName, Result};

/// Where a job is in its life, as [`Admin::job`] finds it.
///
/// ```
/// use pgqrs::JobState;
/// assert_eq!(JobState::Dead.to_string(), "dead");
/// assert!(JobState::Archived.is_finished());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JobState {
    /// Waiting in its queue and runnable now.
    Ready,
    /// Waiting in its queue for its `run_at` (a delay, or a retry's backoff).
    Delayed,
    /// Held by a consumer or worker under a lease.
    Leased,
    /// Settled: moved to the archive with an outcome (`completed`, `cancelled`, ...).
    Archived,
    /// Failed for good: in the queue's dead letters.
    Dead,
}

impl JobState {
    /// `true` for archived and dead jobs: nothing will run them unless they are retried.
    ///
    /// ```
    /// assert!(!pgqrs::JobState::Delayed.is_finished());
    /// ```
    pub fn is_finished(self) -> bool {
        matches!(self, JobState::Archived | JobState::Dead)
    }

    /// The state's name, as shown by [`Display`](fmt::Display).
    ///
    /// ```
    /// assert_eq!(pgqrs::JobState::Leased.as_str(), "leased");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Ready => "ready",
            JobState::Delayed => "delayed",
            JobState::Leased => "leased",
            JobState::Archived => "archived",
            JobState::Dead => "dead",
        }
    }

    fn parse(state: &str) -> Result<Self> {
        Ok(match state {
            "ready" => JobState::Ready,
            "delayed" => JobState::Delayed,
            "leased" => JobState::Leased,
            "archived" => JobState::Archived,
            "dead" => JobState::Dead,
            other => return Err(Error::Internal(format!("unknown job state {other:?}"))),
        })
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One job, wherever it is: waiting or leased in its queue, archived, or dead-lettered.
///
/// ```no_run
/// # async fn demo(admin: pgqrs::Admin) -> pgqrs::Result<()> {
/// let job = admin.job(42).await?;
/// println!("job {} in `{}` is {} after {} deliveries", job.id, job.queue, job.state, job.attempts);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct JobInfo {
    /// The job's id.
    pub id: i64,
    /// Its queue.
    pub queue: QueueName,
    /// Where it is.
    pub state: JobState,
    /// The payload as stored.
    pub payload: serde_json::Value,
    /// Its priority (higher first).
    pub priority: i16,
    /// Deliveries so far.
    pub attempts: i32,
    /// When it was enqueued.
    pub enqueued_at: DateTime<Utc>,
    /// When it is (or was) runnable from, while it is in its queue.
    pub run_at: Option<DateTime<Utc>>,
    /// When the current lease runs out, while it is leased.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// The registered worker holding it, if a worker (not a plain consumer) leased it.
    pub worker_id: Option<i64>,
    /// When it was archived or dead-lettered.
    pub finished_at: Option<DateTime<Utc>>,
    /// The archive's outcome (`completed`, `cancelled`, ...), for an archived job.
    pub outcome: Option<String>,
    /// The last delivery's error for a waiting job, the reason for a dead one.
    pub last_error: Option<String>,
}

impl TryFrom<db::job::JobRow> for JobInfo {
    type Error = Error;

    fn try_from(row: db::job::JobRow) -> Result<Self> {
        Ok(JobInfo {
            id: row.id,
            // The CHECK constraint on `pgqrs.queues.name` enforces the same rule.
            queue: QueueName::trusted(row.queue),
            state: JobState::parse(&row.state)?,
            payload: row.payload,
            priority: row.priority,
            attempts: row.attempts,
            enqueued_at: row.enqueued_at,
            run_at: row.run_at,
            lease_expires_at: row.lease_expires_at,
            worker_id: row.worker_id,
            finished_at: row.finished_at,
            outcome: row.outcome,
            last_error: row.last_error,
        })
    }
}

/// Jobs of the queues `wf-<workflow>` drive workflow runs: operators act on the runs.
fn refuse_workflow_job(job: &JobInfo, action: &str) -> Result<()> {
    if job.queue.as_str().starts_with("wf-") {
        return Err(Error::InvalidArgument(format!(
            "job {} drives a workflow run (queue `{}`): {action} the run instead",
            job.id, job.queue
        )));
    }
    Ok(())
}

impl Admin {
    /// Looks a job up by id in its queue, the archive and the dead letters;
    /// [`Error::JobNotFound`] if it is in none of them.
    ///
    /// ```no_run
    /// # async fn demo(admin: pgqrs::Admin) -> pgqrs::Result<()> {
    /// let job = admin.job(42).await?;
    /// if let Some(error) = &job.last_error {
    ///     println!("job 42 ({}) last failed with: {error}", job.state);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn job(&self, id: i64) -> Result<JobInfo> {
        db::job::job_get(&self.pool, id)
            .await?
            .ok_or(Error::JobNotFound { id })?
            .try_into()
    }

    /// Makes a job runnable now. A delayed job (waiting for a retry's backoff, say) is due
    /// at once; an archived or dead-lettered job moves back into its queue with the same
    /// id and its attempts reset (as [`Admin::redrive`]). A ready job stays as it is.
    /// Returns the state the job was in. [`Error::JobLeased`] while a consumer holds it,
    /// [`Error::JobNotFound`] when there is no such job, and [`Error::InvalidArgument`]
    /// for the job driving a workflow run (retry the run instead).
    ///
    /// ```no_run
    /// # async fn demo(admin: pgqrs::Admin) -> pgqrs::Result<()> {
    /// let was = admin.retry_job(42).await?;
    /// println!("job 42 was {was}, it is ready now");
    /// # Ok(()) }
    /// ```
    pub async fn retry_job(&self, id: i64) -> Result<JobState> {
        refuse_workflow_job(&self.job(id).await?, "retry")?;
        let before = db::job::job_retry(&self.pool, id)
            .await?
            .ok_or(Error::JobNotFound { id })?;
        match JobState::parse(&before)? {
            JobState::Leased => Err(Error::JobLeased { id }),
            state => Ok(state),
        }
    }

    /// Cancels a waiting job: it moves to the archive with the outcome `cancelled`, and no
    /// consumer will get it. Returns the state the job was in; a job that was already
    /// archived or dead-lettered is left as it is. [`Error::JobLeased`] while a consumer
    /// holds it, [`Error::JobNotFound`] when there is no such job, and
    /// [`Error::InvalidArgument`] for the job driving a workflow run (cancel the run).
    ///
    /// ```no_run
    /// # async fn demo(admin: pgqrs::Admin) -> pgqrs::Result<()> {
    /// match admin.cancel_job(42).await {
    ///     Ok(state) if state.is_finished() => println!("job 42 had already finished"),
    ///     Ok(_) => println!("job 42 cancelled"),
    ///     Err(pgqrs::Error::JobLeased { .. }) => println!("job 42 is running"),
    ///     Err(other) => return Err(other),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn cancel_job(&self, id: i64) -> Result<JobState> {
        refuse_workflow_job(&self.job(id).await?, "cancel")?;
        let before = match db::job::job_cancel(&self.pool, id).await? {
            Some(state) => JobState::parse(&state)?,
            // A claim took the job between the statement's snapshot and its delete: it is
            // in flight now, which a fresh look sees.
            None => self.job(id).await?.state,
        };
        match before {
            JobState::Leased => Err(Error::JobLeased { id }),
            state => Ok(state),
        }
    }
}
