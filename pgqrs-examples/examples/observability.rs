//! Observability: pgqrs's `tracing` spans printed by `tracing-subscriber`, and its
//! `metrics` exported in the Prometheus text format.
//!
//! ```sh
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     RUST_LOG=pgqrs=debug cargo run -p pgqrs-examples --example observability
//! ```
//!
//! It installs pgqrs in the database (idempotent), runs a queue of 20 jobs (one of which
//! fails for good) through a worker, and a two-step workflow, publishes the queue gauges,
//! and prints what a Prometheus scrape would get. In a service, serve `handle.render()` on
//! your `/metrics` endpoint (or enable the exporter's `http-listener` feature) and call
//! `Admin::record_metrics` every few seconds.

#![allow(unused_variables)] // the steps take `ctx` without using it

use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use pgqrs::workflow::{Workflow, WorkflowFn};
use pgqrs::{Admin, Config, Message, Producer, QueueOptions, Worker, pgqrs_step, pgqrs_workflow};
use tracing_subscriber::EnvFilter;

#[pgqrs_step]
async fn fetch(ctx: &Workflow, n: i64) -> Result<i64, anyhow::Error> {
    Ok(n * 10)
}

#[pgqrs_step]
async fn store(ctx: &Workflow, n: i64) -> Result<String, anyhow::Error> {
    Ok(format!("stored {n}"))
}

#[pgqrs_workflow]
async fn ingest(ctx: &Workflow, n: i64) -> Result<String, anyhow::Error> {
    let fetched = fetch(ctx, n).await?;
    store(ctx, fetched).await
}

async fn handle(job: Message) -> Result<(), String> {
    match job.payload["n"].as_i64() {
        Some(13) => Err("13 is unlucky".to_owned()),
        _ => Ok(()),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // 1. Spans and events: `RUST_LOG` filters them (default: pgqrs at debug). Each event
    //    is printed inside its spans (`pgqrs.job`, `pgqrs.run`, `pgqrs.step`, `pgqrs.claim`)
    //    with their fields: queue, job_id, attempt, workflow, run_id, step, seq, ...
    //    `.with_span_events(FmtSpan::CLOSE)` would also print each span with its timing.
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("pgqrs=debug")),
        )
        .init();

    // 2. The metrics recorder, installed before any producer or worker is created. The
    //    durations become Prometheus histograms with these buckets (summaries without).
    let prometheus = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".to_owned()),
            &[0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0],
        )?
        .install_recorder()?;
    pgqrs::metrics::describe();

    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let config = Config::from_dsn(&url)?;
    let admin = Admin::new(&config).await?;
    admin.install().await?;
    admin
        .create_queue_with("observed", QueueOptions::builder().max_attempts(2).build())
        .await?;

    // 3. Work: 20 jobs, one of which fails twice and is dead-lettered; a workflow run.
    let producer = Producer::new(&config, "observed").await?;
    let jobs: Vec<serde_json::Value> = (0..20).map(|n| serde_json::json!({ "n": n })).collect();
    producer.enqueue_batch(&jobs).await?;
    let run = <ingest as WorkflowFn>::enqueue(&config, &4).await?;

    let worker = Worker::builder()
        .config(config.clone())
        .name("observability-example")
        .poll_interval(Duration::from_millis(100))
        .build()
        .handle_queue(
            "observed",
            pgqrs::HandlerOptions::builder()
                .backoff(
                    pgqrs::Backoff::builder()
                        .base(Duration::from_millis(50))
                        .build(),
                )
                .build(),
            handle,
        )
        .workflow::<ingest>()
        .start()
        .await?;
    println!("workflow result: {}", run.result::<String>().await?);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stats = admin.queue_stats("observed").await?;
        if stats.ready + stats.leased + stats.delayed == 0 || tokio::time::Instant::now() > deadline
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worker.shutdown(Duration::from_secs(5)).await?;

    // 4. The gauges (queue depth by state, oldest job age), then the scrape.
    admin.record_metrics().await?;
    println!("\n# ---- Prometheus scrape ----");
    println!("{}", prometheus.render());
    Ok(())
}
