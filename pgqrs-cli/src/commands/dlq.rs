//! `dlq list|redrive`.

use chrono::{DateTime, Utc};
use pgqrs::Admin;
use serde::Serialize;

use crate::cli::DlqCommand;
use crate::exit::CliError;
use crate::output::{Output, Table, cell, time};

/// A dead letter, for `--json`.
#[derive(Debug, Serialize)]
struct DeadJson {
    id: i64,
    payload: serde_json::Value,
    priority: i16,
    attempts: i32,
    enqueued_at: DateTime<Utc>,
    failed_at: DateTime<Utc>,
    reason: String,
}

/// What a redrive did, for `--json`.
#[derive(Debug, Serialize)]
struct Redriven {
    queue: String,
    /// The jobs moved back into the queue.
    redriven: Vec<i64>,
    /// Ids given that were not dead letters of the queue.
    not_found: Vec<i64>,
}

fn ids(ids: &[i64]) -> String {
    ids.iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs a `dlq` command.
pub(super) async fn run(admin: &Admin, command: &DlqCommand) -> Result<Output, CliError> {
    match command {
        DlqCommand::List { queue, limit } => {
            let dead = admin.dead_letters(queue, *limit).await?;
            let mut table = Table::new(&["ID", "ATTEMPTS", "ENQUEUED", "FAILED", "REASON"]);
            let mut json = Vec::with_capacity(dead.len());
            for d in dead {
                table.row(vec![
                    d.id.to_string(),
                    d.attempts.to_string(),
                    time(&d.enqueued_at),
                    time(&d.failed_at),
                    cell(&d.reason, 60),
                ]);
                json.push(DeadJson {
                    id: d.id,
                    payload: d.payload,
                    priority: d.priority,
                    attempts: d.attempts,
                    enqueued_at: d.enqueued_at,
                    failed_at: d.failed_at,
                    reason: d.reason,
                });
            }
            let empty = format!("queue `{queue}` has no dead letters");
            Output::new(table.render(&empty), &json)
        }
        DlqCommand::Redrive {
            queue,
            ids: wanted,
            all,
        } => {
            let redriven = if *all {
                admin.redrive_all(queue).await?
            } else {
                admin.redrive(queue, wanted).await?
            };
            let mut not_found: Vec<i64> = wanted
                .iter()
                .copied()
                .filter(|id| !redriven.contains(id))
                .collect();
            not_found.dedup();
            let mut human = match redriven.len() {
                0 => format!("no dead letters of queue `{queue}` were redriven"),
                1 => format!(
                    "redrove 1 dead letter into queue `{queue}`: {}",
                    ids(&redriven)
                ),
                n => format!(
                    "redrove {n} dead letters into queue `{queue}`: {}",
                    ids(&redriven)
                ),
            };
            if !not_found.is_empty() {
                human.push_str(&format!(
                    "\nnot dead letters of queue `{queue}`: {}",
                    ids(&not_found)
                ));
            }
            let done = Redriven {
                queue: queue.clone(),
                redriven,
                not_found,
            };
            Output::new(human, &done)
        }
    }
}
