//! Workflow runs executed by worker processes that are SIGKILLed at random: every run
//! completes, every step output is recorded once, and no completed step runs again.

use std::collections::HashSet;
use std::process::Child;
use std::time::{Duration, Instant};

use pgqrs::workflow::{Workflow, WorkflowFn};
use pgqrs::{Admin, Config, HandlerOptions, Worker, pgqrs_step, pgqrs_workflow};
use sqlx::PgPool;

use crate::fault::{dsn_of, log_dir, spawn_worker_process, worker_process_env};

const RUNS: u32 = 200;
const STEPS: u32 = 5;
const WORKERS: usize = 4;
const CONCURRENCY: usize = 4;
const ENTRY: &str = "fault_workflow::workflow_worker_process_entry";

/// A step that records each execution of its body, then takes a while.
#[pgqrs_step]
async fn chore(ctx: &Workflow, index: u32) -> anyhow::Result<u32> {
    sqlx::query(
        "INSERT INTO step_executions (run_id, step, worker, at) VALUES ($1, $2, $3, clock_timestamp())",
    )
    .bind(ctx.run_id())
    .bind(index as i32)
    .bind(std::process::id() as i32)
    .execute(ctx.pool())
    .await?;
    tokio::time::sleep(Duration::from_millis(40 + fastrand::u64(0..80))).await;
    Ok(index * 10)
}

#[pgqrs_workflow]
async fn five_chores(ctx: &Workflow, run_no: u32) -> anyhow::Result<u32> {
    let mut total = run_no;
    for index in 0..STEPS {
        total += chore(ctx, index).await?;
    }
    Ok(total)
}

/// Not a test: the body of the worker processes `sigkilled_workflow_workers...` starts.
#[tokio::test]
#[ignore = "entry point of the worker processes the fault tests spawn"]
async fn workflow_worker_process_entry() {
    let Some((dsn, name)) = worker_process_env() else {
        return;
    };
    let config = Config::from_dsn(&dsn)
        .unwrap()
        .max_connections(CONCURRENCY as u32 * 2 + 2);
    let options = HandlerOptions::builder()
        .concurrency(CONCURRENCY)
        .prefetch(0)
        .build();
    let _worker = Worker::builder()
        .config(config)
        .name(name)
        // Long enough that a live worker starved of CPU keeps its leases.
        .visibility_timeout(Duration::from_secs(4))
        .poll_interval(Duration::from_millis(100))
        .build()
        .workflow_with::<five_chores>(options)
        .start()
        .await
        .unwrap();
    std::future::pending::<()>().await;
}

async fn succeeded(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pgqrs.runs WHERE status = 'succeeded'")
        .fetch_one(pool)
        .await
        .unwrap_or_default()
}

#[sqlx::test(migrations = "../migrations")]
async fn sigkilled_workflow_workers_never_rerun_a_completed_step(
    pool: PgPool,
) -> anyhow::Result<()> {
    sqlx::query(
        "CREATE TABLE step_executions (run_id bigint NOT NULL, step integer NOT NULL,
                                       worker integer NOT NULL, at timestamptz NOT NULL)",
    )
    .execute(&pool)
    .await?;
    Admin::new(&Config::from_pool(pool.clone())).await?;
    for run_no in 0..RUNS {
        <five_chores as WorkflowFn>::enqueue(&pool, &run_no).await?;
    }
    let dsn = dsn_of(&pool);
    let logs = log_dir();
    let names: Vec<String> = (0..WORKERS).map(|n| format!("wf-worker-{n}")).collect();
    let mut children: Vec<Child> = names
        .iter()
        .map(|name| spawn_worker_process(ENTRY, &dsn, name, &logs, 0))
        .collect();
    let mut killed: HashSet<i32> = HashSet::new();
    let started = Instant::now();
    let mut generation = 0;
    while succeeded(&pool).await < i64::from(RUNS) {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the runs did not finish"
        );
        tokio::time::sleep(Duration::from_millis(400 + fastrand::u64(0..600))).await;
        if killed.len() < 10 && succeeded(&pool).await < i64::from(RUNS) * 3 / 4 {
            let victim = fastrand::usize(0..WORKERS);
            killed.insert(children[victim].id() as i32);
            children[victim].kill().unwrap();
            children[victim].wait().unwrap();
            generation += 1;
            children[victim] = spawn_worker_process(ENTRY, &dsn, &names[victim], &logs, generation);
        }
    }
    for child in &mut children {
        child.kill().unwrap();
        child.wait().unwrap();
    }

    let (runs, steps, distinct_steps): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM pgqrs.runs WHERE status = 'succeeded'),
                (SELECT count(*) FROM pgqrs.steps),
                (SELECT count(DISTINCT (run_id, seq)) FROM pgqrs.steps)",
    )
    .fetch_one(&pool)
    .await?;
    let expected_steps = i64::from(RUNS * STEPS);
    assert_eq!(
        (runs, steps, distinct_steps),
        (i64::from(RUNS), expected_steps, expected_steps)
    );
    let after_completion: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM step_executions e
         JOIN pgqrs.steps s ON s.run_id = e.run_id AND s.seq = e.step
         WHERE e.at > s.completed_at",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(after_completion, 0, "a completed step ran again");
    let reruns: Vec<(i32,)> = sqlx::query_as(
        "SELECT worker FROM (
           SELECT worker, row_number() OVER (PARTITION BY run_id, step ORDER BY at DESC) AS nth
           FROM step_executions) e
         WHERE nth > 1",
    )
    .fetch_all(&pool)
    .await?;
    for (worker,) in &reruns {
        assert!(
            killed.contains(worker),
            "a step re-ran after worker {worker}, which was never killed"
        );
    }
    let outputs: Vec<i64> =
        sqlx::query_scalar("SELECT (output)::bigint FROM pgqrs.runs ORDER BY (input)::bigint")
            .fetch_all(&pool)
            .await?;
    assert_eq!(
        outputs,
        (0..i64::from(RUNS)).map(|n| n + 100).collect::<Vec<_>>()
    );
    println!(
        "{RUNS} runs x {STEPS} steps, {} SIGKILLs, {} interrupted steps re-run, {:.1} s",
        killed.len(),
        reruns.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        killed.len() >= 3,
        "the run was too short to kill workers: {}",
        killed.len()
    );
    assert!(
        reruns.len() <= killed.len() * CONCURRENCY,
        "more re-runs than the dead workers held"
    );
    Ok(())
}
