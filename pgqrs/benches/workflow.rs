//! Throughput of a workflow of 3 no-op steps, runs/s at 1 and 8 clients, next to the
//! hand-written SQL floor (insert the run, insert 3 step outputs, mark it done: 5
//! commits), in the same process, on the same database, interleaved; plus the write
//! transactions (xids) each run costs. Run with `cargo bench -p pgqrs --bench workflow`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::{Duration, Instant};

use pgqrs::workflow::{Workflow, WorkflowFn};
use pgqrs::{Admin, Config, HandlerOptions, Worker, pgqrs_step, pgqrs_workflow};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[pgqrs_step]
async fn noop(_ctx: &Workflow, i: u32) -> anyhow::Result<u32> {
    Ok(i)
}

#[pgqrs_workflow]
async fn three_noops(ctx: &Workflow, n: u32) -> anyhow::Result<u32> {
    let a = noop(ctx, n).await?;
    let b = noop(ctx, a + 1).await?;
    noop(ctx, b + 1).await
}

#[tokio::main]
async fn main() -> Res<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let seconds = if quick { 2.0 } else { 8.0 };
    let server: PgConnectOptions = std::env::var("PGQRS_BENCH_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
        .parse()?;
    let admin_pool = PgPool::connect_with(server.clone()).await?;
    sqlx::query("DROP DATABASE IF EXISTS pgqrs_bench_workflow WITH (FORCE)")
        .execute(&admin_pool)
        .await?;
    sqlx::query("CREATE DATABASE pgqrs_bench_workflow")
        .execute(&admin_pool)
        .await?;
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .connect_with(server.database("pgqrs_bench_workflow"))
        .await?;
    Admin::new(&Config::from_pool(pool.clone()))
        .await?
        .install()
        .await?;
    for statement in [
        "CREATE TABLE raw_runs (id bigserial PRIMARY KEY, status text NOT NULL, input jsonb NOT NULL,
           output jsonb, created_at timestamptz NOT NULL DEFAULT now())",
        "CREATE TABLE raw_steps (run_id bigint NOT NULL, seq int NOT NULL, output jsonb NOT NULL,
           PRIMARY KEY (run_id, seq))",
    ] {
        sqlx::query(AssertSqlSafe(statement)).execute(&pool).await?;
    }

    println!("3 no-op steps per run, {seconds} s per measurement, medians of 3\n");
    println!(
        "| clients | pgqrs runs/s | raw SQL floor runs/s | ratio | pgqrs xids/run | floor xids/run |"
    );
    println!("|---|---|---|---|---|---|");
    for clients in [1usize, 8] {
        let (mut ours, mut raw) = (Vec::new(), Vec::new());
        let (mut ours_xids, mut raw_xids) = (0.0, 0.0);
        for _ in 0..3 {
            let (rate, xids) = measure(&pool, clients, seconds, ours_run).await?;
            ours.push(rate);
            ours_xids = xids;
            let (rate, xids) = measure(&pool, clients, seconds, raw_run).await?;
            raw.push(rate);
            raw_xids = xids;
        }
        let (o, r) = (median(&mut ours), median(&mut raw));
        println!(
            "| {clients} | {o:.0} | {r:.0} | {:.2}x | {ours_xids:.2} | {raw_xids:.2} |",
            o / r
        );
    }
    println!("\nxids per run = write transactions (commits) per run; the 3 steps take 3 of them.");

    // Through a worker: runs enqueued, then executed by one worker with 8 runs at a time.
    let runs = if quick { 300 } else { 2_000 };
    let succeeded = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pgqrs.runs WHERE status = 'succeeded'")
            .fetch_one(&pool)
            .await
    };
    let before = succeeded().await?;
    for n in 0..runs {
        <three_noops as WorkflowFn>::enqueue(&pool, &n).await?;
    }
    let started = Instant::now();
    let worker = Worker::builder()
        .config(Config::from_pool(pool.clone()))
        .build()
        .workflow_with::<three_noops>(HandlerOptions::builder().concurrency(8).build())
        .start()
        .await?;
    while succeeded().await? < before + i64::from(runs) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = f64::from(runs) / started.elapsed().as_secs_f64();
    worker.shutdown(Duration::from_secs(5)).await?;
    println!("worker-driven (enqueue, then 1 worker, 8 runs at a time): {rate:.0} runs/s");
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

type RunFn = fn(PgPool, u32) -> futures::future::BoxFuture<'static, Res<()>>;

fn ours_run(pool: PgPool, n: u32) -> futures::future::BoxFuture<'static, Res<()>> {
    Box::pin(async move {
        let workflow = Workflow::create(&pool, "three_noops", &n).await?;
        let out = three_noops(&workflow, n).await?;
        assert_eq!(out, n + 2);
        Ok(())
    })
}

fn raw_run(pool: PgPool, n: u32) -> futures::future::BoxFuture<'static, Res<()>> {
    Box::pin(async move {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO raw_runs (status, input) VALUES ('running', $1) RETURNING id",
        )
        .bind(serde_json::json!(n))
        .fetch_one(&pool)
        .await?;
        for seq in 0..3 {
            sqlx::query("INSERT INTO raw_steps (run_id, seq, output) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(seq)
                .bind(serde_json::json!(n + seq as u32))
                .execute(&pool)
                .await?;
        }
        sqlx::query("UPDATE raw_runs SET status = 'succeeded', output = $2 WHERE id = $1")
            .bind(id)
            .bind(serde_json::json!(n + 2))
            .execute(&pool)
            .await?;
        Ok(())
    })
}

/// Runs `run` from `clients` tasks for `seconds`; returns runs/s and xids per run.
async fn measure(pool: &PgPool, clients: usize, seconds: f64, run: RunFn) -> Res<(f64, f64)> {
    let next_xid = || async {
        sqlx::query_scalar::<_, String>("SELECT pg_snapshot_xmax(pg_current_snapshot())::text")
            .fetch_one(pool)
            .await
            .map(|x| x.parse::<f64>().unwrap_or_default())
    };
    let xid_before = next_xid().await?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for client in 0..clients {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0u32;
            while Instant::now() < deadline {
                run(pool.clone(), client as u32 * 1_000_000 + done).await?;
                done += 1;
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(done)
        }));
    }
    let mut total = 0u32;
    for task in tasks {
        total += task.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let xids = next_xid().await? - xid_before;
    Ok((f64::from(total) / elapsed, xids / f64::from(total.max(1))))
}
