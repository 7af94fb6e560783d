//! The pgqrs benchmark: for every scenario, pgqrs and a hand-written raw-SQL baseline run
//! in this one process, against the same server, interleaved, several repetitions; the
//! medians and their ratio go into a markdown table (printed, and written to
//! `pgqrs-bench/RESULTS.md` by a full run). `--quick` is a short smoke run.

mod drain;
mod enqueue;
mod latency;
mod lease;
mod raw;
mod report;
mod stats;
mod workflow;

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use pgqrs::{Admin, Config};
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;

use report::Report;

/// Runs pgqrs next to raw SQL and prints the ratios.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// A short smoke run (about 30 s) with small sizes; nothing is written.
    #[arg(long)]
    quick: bool,
    /// Server to use; the benchmark creates (and drops first) the database `pgqrs_bench`.
    #[arg(
        long,
        env = "PGQRS_BENCH_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    url: String,
    /// Only these scenarios (letters A to F; W for WAL and size; L for lease layouts; S for
    /// queue stats).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Where to write the results (default: pgqrs-bench/RESULTS.md after a full run).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

/// What every scenario gets: the database, sizes, and the report to add rows to.
pub(crate) struct Bench {
    pub(crate) pool: PgPool,
    pub(crate) config: Config,
    pub(crate) admin: Admin,
    pub(crate) quick: bool,
    pub(crate) reps: usize,
    pub(crate) report: Report,
}

/// Forces a checkpoint; every timed part starts after one. Otherwise a checkpoint that the
/// WAL of a fill (or of the part before) triggered runs through the part, its writes
/// competing with commits for the disk and its full-page images adding to the WAL: one run
/// measured a claim loop at half its speed that way, while the baseline after it ran clear.
pub(crate) async fn checkpoint(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query("CHECKPOINT").execute(pool).await?;
    Ok(())
}

impl Bench {
    /// `full` in a full run, `quick` in a quick one.
    pub(crate) fn size(&self, full: usize, quick: usize) -> usize {
        if self.quick { quick } else { full }
    }

    pub(crate) fn seconds(&self, full: f64, quick: f64) -> Duration {
        Duration::from_secs_f64(if self.quick { quick } else { full })
    }
}

/// The sizes of the statements that write `n` jobs at most `chunk` at a time.
pub(crate) fn chunk_sizes(n: usize, chunk: usize) -> impl Iterator<Item = usize> {
    (0..n)
        .step_by(chunk.max(1))
        .map(move |start| chunk.min(n - start))
}

/// A job payload of about 110 bytes of JSON.
pub(crate) fn payload(n: usize) -> serde_json::Value {
    serde_json::json!({
        "task": "send_email",
        "to": format!("user-{n:06}@example.com"),
        "n": n,
        "pad": "0123456789abcdef0123456789abcdef0123456789",
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server: PgConnectOptions = args.url.parse().context("parsing --url")?;
    let admin_pool = PgPool::connect_with(server.clone()).await?;
    sqlx::query("DROP DATABASE IF EXISTS pgqrs_bench WITH (FORCE)")
        .execute(&admin_pool)
        .await?;
    sqlx::query("CREATE DATABASE pgqrs_bench")
        .execute(&admin_pool)
        .await?;
    // The raw baselines run on pgqrs's own pool, so both sides pay the same pool costs.
    let config = Config::from_connect_options(server.database("pgqrs_bench")).max_connections(16);
    let pool = config.pool().await?;
    let admin = Admin::new(&config).await?;
    admin.install().await?;
    raw::setup(&pool).await?;
    let mut bench = Bench {
        pool: pool.clone(),
        config,
        admin,
        quick: args.quick,
        reps: if args.quick { 1 } else { 5 },
        report: Report::default(),
    };
    let wanted = |letter: &str| {
        args.only.is_empty() || args.only.iter().any(|o| o.eq_ignore_ascii_case(letter))
    };
    eprintln!(
        "pgqrs-bench: payload {} bytes, pool 16, {} repetition(s){}",
        payload(0).to_string().len(),
        bench.reps,
        if args.quick { ", quick" } else { "" }
    );
    if wanted("A") || wanted("B") {
        enqueue::run(&mut bench, wanted("A"), wanted("B")).await?;
    }
    if wanted("C") {
        drain::run(&mut bench).await?;
    }
    if wanted("L") {
        lease::run(&mut bench).await?;
    }
    if wanted("W") {
        drain::wal_and_size(&mut bench).await?;
    }
    if wanted("D") || wanted("E") {
        latency::run(&mut bench, wanted("D"), wanted("E")).await?;
    }
    if wanted("F") {
        workflow::run(&mut bench).await?;
    }
    if wanted("S") {
        stats::run(&mut bench).await?;
    }

    let table = bench.report.markdown();
    println!("{table}");
    let out = args.out.or_else(|| {
        (!args.quick && args.only.is_empty())
            .then(|| std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/RESULTS.md")))
    });
    if let Some(out) = out {
        let machine = report::machine(&pool).await?;
        std::fs::write(&out, format!("{}\n{machine}\n{table}", report::HEADER))
            .with_context(|| format!("writing {}", out.display()))?;
        eprintln!("results written to {}", out.display());
    }
    Ok(())
}
