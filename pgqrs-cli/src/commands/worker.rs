//! `worker list`.

use chrono::{DateTime, Utc};
use pgqrs::Admin;
use serde::Serialize;

use crate::cli::WorkerCommand;
use crate::exit::CliError;
use crate::output::{Output, Table, time};

/// A registered worker, for `--json`.
#[derive(Debug, Serialize)]
struct WorkerJson {
    id: i64,
    name: String,
    pid: i32,
    queues: Vec<String>,
    started_at: DateTime<Utc>,
    heartbeat_at: DateTime<Utc>,
}

/// Runs a `worker` command.
pub(super) async fn run(admin: &Admin, command: &WorkerCommand) -> Result<Output, CliError> {
    match command {
        WorkerCommand::List => {
            let workers = admin.list_workers().await?;
            let mut table = Table::new(&["ID", "NAME", "PID", "QUEUES", "STARTED", "HEARTBEAT"]);
            let mut json = Vec::with_capacity(workers.len());
            for w in workers {
                table.row(vec![
                    w.id.to_string(),
                    w.name.clone(),
                    w.pid.to_string(),
                    w.queues.join(","),
                    time(&w.started_at),
                    time(&w.heartbeat_at),
                ]);
                json.push(WorkerJson {
                    id: w.id,
                    name: w.name,
                    pid: w.pid,
                    queues: w.queues,
                    started_at: w.started_at,
                    heartbeat_at: w.heartbeat_at,
                });
            }
            Output::new(table.render("no workers are registered"), &json)
        }
    }
}
