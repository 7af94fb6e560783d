//! `job show|retry|cancel`.

use chrono::{DateTime, Utc};
use pgqrs::{Admin, JobInfo};
use serde::Serialize;

use crate::cli::JobCommand;
use crate::exit::CliError;
use crate::output::{Output, fields, json_inline, opt, opt_time, time};

/// A job, for `--json`.
#[derive(Debug, Serialize)]
struct JobJson {
    id: i64,
    queue: String,
    state: String,
    payload: serde_json::Value,
    priority: i16,
    attempts: i32,
    enqueued_at: DateTime<Utc>,
    run_at: Option<DateTime<Utc>>,
    lease_expires_at: Option<DateTime<Utc>>,
    worker_id: Option<i64>,
    finished_at: Option<DateTime<Utc>>,
    outcome: Option<String>,
    last_error: Option<String>,
}

impl From<JobInfo> for JobJson {
    fn from(j: JobInfo) -> Self {
        JobJson {
            id: j.id,
            queue: j.queue.to_string(),
            state: j.state.to_string(),
            payload: j.payload,
            priority: j.priority,
            attempts: j.attempts,
            enqueued_at: j.enqueued_at,
            run_at: j.run_at,
            lease_expires_at: j.lease_expires_at,
            worker_id: j.worker_id,
            finished_at: j.finished_at,
            outcome: j.outcome,
            last_error: j.last_error,
        }
    }
}

/// What a retry or cancel did, for `--json`.
#[derive(Debug, Serialize)]
struct Changed {
    id: i64,
    queue: String,
    /// The state before.
    was: String,
    /// The state now.
    state: String,
}

impl Changed {
    fn new(job: &JobInfo, was: impl ToString) -> Self {
        Changed {
            id: job.id,
            queue: job.queue.to_string(),
            was: was.to_string(),
            state: job.state.to_string(),
        }
    }
}

fn show(job: &JobInfo) -> String {
    fields(&[
        ("job", job.id.to_string()),
        ("queue", job.queue.to_string()),
        ("state", job.state.to_string()),
        ("priority", job.priority.to_string()),
        ("attempts", job.attempts.to_string()),
        ("enqueued", time(&job.enqueued_at)),
        ("run at", opt_time(job.run_at.as_ref())),
        ("lease expires", opt_time(job.lease_expires_at.as_ref())),
        ("worker", opt(job.worker_id)),
        ("finished", opt_time(job.finished_at.as_ref())),
        ("outcome", opt(job.outcome.as_deref())),
        ("last error", opt(job.last_error.as_deref())),
        ("payload", json_inline(&job.payload)),
    ])
}

/// Runs a `job` command.
pub(super) async fn run(admin: &Admin, command: &JobCommand) -> Result<Output, CliError> {
    match command {
        JobCommand::Show(arg) => {
            let job = admin.job(arg.id).await?;
            Output::new(show(&job), &JobJson::from(job))
        }
        JobCommand::Retry(arg) => {
            let was = admin.retry_job(arg.id).await?;
            let job = admin.job(arg.id).await?;
            let human = format!(
                "job {} was {was}; it is {} in queue `{}`",
                job.id, job.state, job.queue
            );
            Output::new(human, &Changed::new(&job, was))
        }
        JobCommand::Cancel(arg) => {
            let was = admin.cancel_job(arg.id).await?;
            let job = admin.job(arg.id).await?;
            let human = if was.is_finished() {
                format!(
                    "job {} had already finished ({was}): nothing to cancel",
                    job.id
                )
            } else {
                format!(
                    "cancelled job {} of queue `{}` (it was {was}); it is archived with the outcome `cancelled`",
                    job.id, job.queue
                )
            };
            Output::new(human, &Changed::new(&job, was))
        }
    }
}
