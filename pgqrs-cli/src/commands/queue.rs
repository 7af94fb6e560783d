//! `queue create|list|stats|pause|resume|purge|delete`.

use chrono::{DateTime, Utc};
use pgqrs::{Admin, QueueInfo, QueueOptions, QueueStats};
use serde::Serialize;

use crate::cli::QueueCommand;
use crate::exit::CliError;
use crate::output::{Output, Table, age, fields, opt, time};

/// A queue, for `--json`.
#[derive(Debug, Serialize)]
struct QueueJson {
    name: String,
    max_attempts: i32,
    paused: bool,
    global_concurrency: Option<i32>,
    created_at: DateTime<Utc>,
}

impl From<&QueueInfo> for QueueJson {
    fn from(q: &QueueInfo) -> Self {
        QueueJson {
            name: q.name.to_string(),
            max_attempts: q.max_attempts,
            paused: q.paused,
            global_concurrency: q.global_concurrency,
            created_at: q.created_at,
        }
    }
}

/// A queue's counts, for `--json`.
#[derive(Debug, Serialize)]
struct StatsJson {
    queue: String,
    ready: i64,
    leased: i64,
    delayed: i64,
    dead: i64,
    oldest_ready_age_secs: Option<f64>,
}

impl From<&QueueStats> for StatsJson {
    fn from(s: &QueueStats) -> Self {
        StatsJson {
            queue: s.queue.to_string(),
            ready: s.ready,
            leased: s.leased,
            delayed: s.delayed,
            dead: s.dead,
            oldest_ready_age_secs: s.oldest_ready_age.map(|d| d.as_secs_f64()),
        }
    }
}

/// What a queue action did, for `--json`.
#[derive(Debug, Serialize)]
struct Done {
    queue: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    paused: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    purged: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted: Option<bool>,
}

impl Done {
    fn new(queue: &str) -> Self {
        Done {
            queue: queue.to_owned(),
            paused: None,
            purged: None,
            deleted: None,
        }
    }
}

/// Refuses `purge` and `delete` without `--yes`, before connecting.
pub(super) fn precheck(command: &QueueCommand) -> Result<(), CliError> {
    match command {
        QueueCommand::Purge { name, confirm } => super::require(
            confirm,
            &format!("purge deletes every waiting and leased job of queue `{name}`"),
        ),
        QueueCommand::Delete { name, confirm } => super::require(
            confirm,
            &format!("delete removes queue `{name}` with its jobs, archive and dead letters"),
        ),
        _ => Ok(()),
    }
}

fn stats_table(stats: &[QueueStats]) -> String {
    let mut table = Table::new(&[
        "QUEUE",
        "READY",
        "LEASED",
        "DELAYED",
        "DEAD",
        "OLDEST READY",
    ]);
    for s in stats {
        table.row(vec![
            s.queue.to_string(),
            s.ready.to_string(),
            s.leased.to_string(),
            s.delayed.to_string(),
            s.dead.to_string(),
            age(s.oldest_ready_age),
        ]);
    }
    table.render("no queues")
}

/// Runs a `queue` command.
pub(super) async fn run(admin: &Admin, command: &QueueCommand) -> Result<Output, CliError> {
    match command {
        QueueCommand::Create { name, max_attempts } => {
            let options = QueueOptions::builder().max_attempts(*max_attempts).build();
            let q = admin.create_queue_with(name, options).await?;
            let human = fields(&[
                ("queue", q.name.to_string()),
                ("max attempts", q.max_attempts.to_string()),
                ("paused", q.paused.to_string()),
                ("created", time(&q.created_at)),
            ]);
            Output::new(human, &QueueJson::from(&q))
        }
        QueueCommand::List => {
            let queues = admin.list_queues().await?;
            let mut table =
                Table::new(&["NAME", "PAUSED", "MAX ATTEMPTS", "CONCURRENCY", "CREATED"]);
            for q in &queues {
                table.row(vec![
                    q.name.to_string(),
                    if q.paused { "yes" } else { "no" }.into(),
                    q.max_attempts.to_string(),
                    opt(q.global_concurrency),
                    time(&q.created_at),
                ]);
            }
            let json: Vec<QueueJson> = queues.iter().map(QueueJson::from).collect();
            Output::new(table.render("no queues"), &json)
        }
        QueueCommand::Stats { name: Some(name) } => {
            let stats = admin.queue_stats(name).await?;
            Output::new(
                stats_table(std::slice::from_ref(&stats)),
                &StatsJson::from(&stats),
            )
        }
        QueueCommand::Stats { name: None } => {
            let mut stats = Vec::new();
            for q in admin.list_queues().await? {
                match admin.queue_stats(q.name.as_str()).await {
                    Ok(s) => stats.push(s),
                    // Deleted since it was listed.
                    Err(pgqrs::Error::QueueNotFound { .. }) => {}
                    Err(err) => return Err(err.into()),
                }
            }
            let json: Vec<StatsJson> = stats.iter().map(StatsJson::from).collect();
            Output::new(stats_table(&stats), &json)
        }
        QueueCommand::Pause(q) => {
            admin.pause_queue(&q.name).await?;
            let done = Done {
                paused: Some(true),
                ..Done::new(&q.name)
            };
            Output::new(format!("paused queue `{}`", q.name), &done)
        }
        QueueCommand::Resume(q) => {
            admin.resume_queue(&q.name).await?;
            let done = Done {
                paused: Some(false),
                ..Done::new(&q.name)
            };
            Output::new(format!("resumed queue `{}`", q.name), &done)
        }
        QueueCommand::Purge { name, .. } => {
            let purged = admin.purge_queue(name).await?;
            let done = Done {
                purged: Some(purged),
                ..Done::new(name)
            };
            let jobs = if purged == 1 { "job" } else { "jobs" };
            Output::new(format!("purged {purged} {jobs} from queue `{name}`"), &done)
        }
        QueueCommand::Delete { name, .. } => {
            admin.delete_queue(name).await?;
            let done = Done {
                deleted: Some(true),
                ..Done::new(name)
            };
            Output::new(format!("deleted queue `{name}`"), &done)
        }
    }
}
