//! `workflow list|show|cancel|retry`.

use chrono::{DateTime, Utc};
use pgqrs::workflow::{RunHandle, RunState, RunStatus};
use pgqrs::{Admin, RunFilter, RunInfo, StepInfo};
use serde::Serialize;

use crate::cli::WorkflowCommand;
use crate::exit::CliError;
use crate::output::{Output, Table, cell, fields, json_inline, opt, opt_time, time};

/// A run, for `--json`.
#[derive(Debug, Serialize)]
struct RunJson {
    id: i64,
    workflow: String,
    version: String,
    status: String,
    input: serde_json::Value,
    output: Option<serde_json::Value>,
    error: Option<String>,
    wake_at: Option<DateTime<Utc>>,
    waiting_for: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    steps: Option<Vec<StepJson>>,
}

impl From<RunInfo> for RunJson {
    fn from(r: RunInfo) -> Self {
        RunJson {
            id: r.id,
            workflow: r.workflow,
            version: r.version,
            status: r.status.to_string(),
            input: r.input,
            output: r.output,
            error: r.error,
            wake_at: r.wake_at,
            waiting_for: r.waiting_for,
            created_at: r.created_at,
            updated_at: r.updated_at,
            finished_at: r.finished_at,
            steps: None,
        }
    }
}

/// A recorded step, for `--json`.
#[derive(Debug, Serialize)]
struct StepJson {
    seq: i32,
    name: String,
    input: serde_json::Value,
    output: serde_json::Value,
    attempts: i32,
    completed_at: DateTime<Utc>,
}

impl From<StepInfo> for StepJson {
    fn from(s: StepInfo) -> Self {
        StepJson {
            seq: s.seq,
            name: s.name,
            input: s.input,
            output: s.output,
            attempts: s.attempts,
            completed_at: s.completed_at,
        }
    }
}

/// What a cancel or retry did, for `--json`.
#[derive(Debug, Serialize)]
struct Changed {
    run_id: i64,
    /// The status before.
    was: String,
    /// The status now.
    status: String,
}

fn show(run: &RunInfo, steps: &[StepInfo]) -> String {
    let mut out = fields(&[
        ("run", run.id.to_string()),
        ("workflow", run.workflow.clone()),
        (
            "version",
            if run.version.is_empty() {
                "-".into()
            } else {
                run.version.clone()
            },
        ),
        ("status", run.status.to_string()),
        ("created", time(&run.created_at)),
        ("updated", time(&run.updated_at)),
        ("finished", opt_time(run.finished_at.as_ref())),
        ("wakes at", opt_time(run.wake_at.as_ref())),
        ("waiting for", opt(run.waiting_for.as_deref())),
        ("error", opt(run.error.as_deref())),
        ("input", json_inline(&run.input)),
        ("output", opt(run.output.as_ref().map(json_inline))),
    ]);
    out.push('\n');
    let mut table = Table::new(&["SEQ", "STEP", "ATTEMPTS", "COMPLETED", "OUTPUT"]);
    for s in steps {
        table.row(vec![
            s.seq.to_string(),
            s.name.clone(),
            s.attempts.to_string(),
            time(&s.completed_at),
            cell(&json_inline(&s.output), 60),
        ]);
    }
    out.push_str(&table.render("no steps recorded"));
    out
}

/// Runs a `workflow` command.
pub(super) async fn run(admin: &Admin, command: &WorkflowCommand) -> Result<Output, CliError> {
    match command {
        WorkflowCommand::List {
            status,
            workflow,
            limit,
        } => {
            let mut filter = RunFilter::default();
            filter.status = status.map(RunStatus::from);
            filter.workflow = workflow.clone();
            filter.limit = *limit;
            let runs = admin.list_runs(&filter).await?;
            let mut table =
                Table::new(&["ID", "WORKFLOW", "STATUS", "CREATED", "FINISHED", "ERROR"]);
            for r in &runs {
                table.row(vec![
                    r.id.to_string(),
                    r.workflow.clone(),
                    r.status.to_string(),
                    time(&r.created_at),
                    opt_time(r.finished_at.as_ref()),
                    r.error
                        .as_deref()
                        .map_or_else(|| "-".into(), |e| cell(e, 50)),
                ]);
            }
            let json: Vec<RunJson> = runs.into_iter().map(RunJson::from).collect();
            Output::new(table.render("no workflow runs"), &json)
        }
        WorkflowCommand::Show(arg) => {
            let run = admin.run(arg.id).await?;
            let steps = admin.run_steps(arg.id).await?;
            let human = show(&run, &steps);
            let mut json = RunJson::from(run);
            json.steps = Some(steps.into_iter().map(StepJson::from).collect());
            Output::new(human, &json)
        }
        WorkflowCommand::Cancel(arg) => {
            let handle = RunHandle::new(admin.config(), arg.id).await?;
            let was = handle.status().await?;
            handle.cancel().await?;
            let changed = Changed {
                run_id: arg.id,
                was: was.to_string(),
                status: RunStatus::Cancelled.to_string(),
            };
            Output::new(
                format!("cancelled workflow run {} (it was {was})", arg.id),
                &changed,
            )
        }
        WorkflowCommand::Retry(arg) => {
            let handle = RunHandle::new(admin.config(), arg.id).await?;
            let was = match handle.state().await? {
                RunState::Failed(run) => {
                    run.retry().await?;
                    RunStatus::Failed
                }
                RunState::Cancelled(run) => {
                    run.retry().await?;
                    RunStatus::Cancelled
                }
                other => {
                    return Err(pgqrs::Error::IllegalTransition {
                        run_id: arg.id,
                        from: other.status(),
                        to: RunStatus::Pending,
                    }
                    .into());
                }
            };
            let changed = Changed {
                run_id: arg.id,
                was: was.to_string(),
                status: RunStatus::Pending.to_string(),
            };
            let human = format!(
                "workflow run {} was {was}; it is pending again and a workflow worker resumes it after its last recorded step",
                arg.id
            );
            Output::new(human, &changed)
        }
    }
}
