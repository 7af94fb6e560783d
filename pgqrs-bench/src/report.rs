//! Rows of the results table: our median, the baseline's median, the ratio, the target.

use std::fmt::Write;

use sqlx::PgPool;

/// The preamble of `RESULTS.md`.
pub(crate) const HEADER: &str = "# pgqrs benchmark results\n\n\
Written by `cargo run --release -p pgqrs-bench` (the last full run). Every row runs pgqrs and \
its raw-SQL baseline in one process, against one server, interleaved; figures are medians. \
The ratio is pgqrs / baseline for rates, baseline / pgqrs for costs, so above 1 means pgqrs \
does better. Both run on the pool pgqrs makes (16 connections, a connection pinged before use \
only after a second idle).\n";

/// One scenario's outcome.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) scenario: String,
    pub(crate) unit: &'static str,
    pub(crate) ours: f64,
    pub(crate) baseline: &'static str,
    pub(crate) raw: f64,
    /// Rates (jobs/s) are better higher; costs (ms, bytes) lower.
    pub(crate) higher_is_better: bool,
    /// The ratio the issue asks for, if any.
    pub(crate) target: Option<f64>,
}

impl Row {
    /// A row of jobs per second.
    pub(crate) fn jobs_per_second(
        scenario: &str,
        ours: f64,
        baseline: &'static str,
        raw: f64,
        target: Option<f64>,
    ) -> Row {
        Row {
            scenario: scenario.into(),
            unit: "jobs/s",
            ours,
            baseline,
            raw,
            higher_is_better: true,
            target,
        }
    }

    pub(crate) fn ratio(&self) -> f64 {
        if self.higher_is_better {
            self.ours / self.raw
        } else {
            self.raw / self.ours
        }
    }
}

/// All rows so far, plus free-form notes.
#[derive(Debug, Default)]
pub(crate) struct Report {
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Report {
    pub(crate) fn add(&mut self, row: Row) {
        eprintln!(
            "  {}: pgqrs {} {}, {} {} -> {:.2}x",
            row.scenario,
            fmt_value(row.ours),
            row.unit,
            row.baseline,
            fmt_value(row.raw),
            row.ratio()
        );
        self.rows.push(row);
    }

    pub(crate) fn note(&mut self, note: String) {
        eprintln!("  {note}");
        self.notes.push(note);
    }

    pub(crate) fn markdown(&self) -> String {
        let mut out = String::from(
            "| scenario | pgqrs | raw SQL baseline | ratio | target | |\n|---|---|---|---|---|---|\n",
        );
        for row in &self.rows {
            let verdict = match row.target {
                Some(target) if row.ratio() >= target => "met",
                Some(_) => "**missed**",
                None => "",
            };
            let target = row.target.map(|t| format!("≥ {t:.2}x")).unwrap_or_default();
            let _ = writeln!(
                out,
                "| {} | {} {} | {} {} ({}) | {:.2}x | {target} | {verdict} |",
                row.scenario,
                fmt_value(row.ours),
                row.unit,
                fmt_value(row.raw),
                row.unit,
                row.baseline,
                row.ratio()
            );
        }
        for note in &self.notes {
            let _ = writeln!(out, "\n{note}");
        }
        out
    }
}

fn fmt_value(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or_default()
}

/// Where the figures come from: cores, memory, Postgres, date, commit.
pub(crate) async fn machine(pool: &PgPool) -> anyhow::Result<String> {
    let version: String = sqlx::query_scalar("SELECT version()")
        .fetch_one(pool)
        .await?;
    let sync: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(pool)
        .await?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_owned())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or_else(|| "?".to_owned(), |kb| format!("{} GiB", kb / 1024 / 1024));
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    Ok(format!(
        "Machine: {cores} cores, {memory}; {version}; synchronous_commit = {sync}. Run on {} at commit {commit}.\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    ))
}
