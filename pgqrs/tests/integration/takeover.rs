//! Executing runs without a worker: `Workflow::take_over` of a run whose executor died, and
//! `Workflow::claim_next` of runs nobody holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use pgqrs::Db;
use pgqrs::workflow::{RunStatus, Workflow};
use pgqrs::{Error, pgqrs_step, pgqrs_workflow};
use sqlx::PgPool;

use crate::workflow::{effect, effects, pgqrs_error, with_effects};

#[pgqrs_step]
async fn fetch(ctx: &Workflow, key: &str) -> anyhow::Result<String> {
    effect(ctx, "fetch").await?;
    Ok(format!("rows of {key}"))
}

#[pgqrs_step]
async fn slow_count(ctx: &Workflow, rows: String) -> anyhow::Result<usize> {
    effect(ctx, "slow_count").await?;
    let hang: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM hang)")
        .fetch_one(ctx.pool())
        .await?;
    if hang {
        std::future::pending::<()>().await;
    }
    Ok(rows.len())
}

#[pgqrs_workflow]
async fn count_rows(ctx: &Workflow, key: &str) -> anyhow::Result<usize> {
    let rows = fetch(ctx, key).await?;
    slow_count(ctx, rows).await
}

async fn setup(pool: &Db) {
    with_effects(pool).await;
    sqlx::raw_sql("CREATE TABLE hang (x int); INSERT INTO hang VALUES (1)")
        .execute(pool)
        .await
        .unwrap();
}

#[sqlx::test(migrations = "../migrations")]
async fn a_dead_executors_run_is_taken_over_once_its_lease_runs_out(
    pool: PgPool,
) -> anyhow::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    setup(&pool).await;
    // Long enough for the take-over below to come while the lease holds, even through a
    // pooler on a loaded machine.
    let config = crate::common::config(&pool).visibility_timeout(Duration::from_secs(2));
    let first = Arc::new(Workflow::create(&config, "count_rows", &"orders").await?);
    let run_id = first.run_id();
    let executing = tokio::spawn({
        let first = Arc::clone(&first);
        async move { count_rows(&first, "orders").await }
    });
    crate::common::wait_until(Duration::from_secs(10), || async {
        effects(&pool, "slow_count").await == 1
    })
    .await;
    // The executor dies mid-step; its lease was renewed while it lived.
    executing.abort();
    let busy = Workflow::take_over(&config, run_id).await.unwrap_err();
    assert!(
        matches!(busy, Error::RunBusy { run_id: id } if id == run_id),
        "{busy}"
    );

    tokio::time::sleep(Duration::from_millis(2_300)).await;
    sqlx::query("DELETE FROM hang").execute(&pool).await?;
    let second = Workflow::take_over(&config, run_id).await?;
    assert_eq!(count_rows(&second, "orders").await?, "rows of orders".len());
    assert_eq!(
        effects(&pool, "fetch").await,
        1,
        "a completed step ran again"
    );
    assert_eq!(effects(&pool, "slow_count").await, 2);
    assert_eq!(second.handle().status().await?, RunStatus::Succeeded);

    // Should the first executor come back, it is fenced off: nothing it does is recorded.
    let late = count_rows(&first, "orders").await.unwrap_err();
    assert!(
        matches!(pgqrs_error(&late), Error::LeaseLost { .. }),
        "{late:#}"
    );
    let steps: i64 = sqlx::query_scalar("SELECT count(*) FROM pgqrs.steps")
        .fetch_one(&pool)
        .await?;
    assert_eq!(steps, 2);

    let over = Workflow::take_over(&config, run_id).await.unwrap_err();
    assert!(matches!(
        over,
        Error::IllegalTransition {
            from: RunStatus::Succeeded,
            ..
        }
    ));
    let missing = Workflow::take_over(&config, run_id + 100)
        .await
        .unwrap_err();
    assert!(matches!(missing, Error::RunNotFound { .. }));
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn claim_next_hands_out_each_waiting_run_once(pool: PgPool) -> anyhow::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    setup(&pool).await;
    sqlx::query("DELETE FROM hang").execute(&pool).await?;
    let config = crate::common::config(&pool);
    let mut runs = Vec::new();
    for key in ["a", "b", "c"] {
        runs.push(Workflow::enqueue(&config, "count_rows", &key).await?);
    }
    let mut claimed = Vec::new();
    while let Some(ctx) = Workflow::claim_next(&config, "count_rows").await? {
        let key: String = ctx.input()?;
        claimed.push(ctx.run_id());
        count_rows(&ctx, &key).await?;
    }
    claimed.sort_unstable();
    let mut expected: Vec<i64> = runs.iter().map(|run| run.run_id()).collect();
    expected.sort_unstable();
    assert_eq!(claimed, expected);
    for run in &runs {
        assert_eq!(run.result::<usize>().await?, "rows of a".len());
    }
    assert_eq!(effects(&pool, "fetch").await, 3);
    assert!(
        Workflow::claim_next(&config, "no_runs_yet")
            .await?
            .is_none()
    );
    Ok(())
}

/// The step's primary key, not only the lease check, keeps a step from being recorded
/// twice: should another writer record it first (a taker whose insert raced this
/// executor's lease check), the executor reports the lost lease and records nothing.
#[sqlx::test(migrations = "../migrations")]
async fn a_step_recorded_by_another_writer_is_not_recorded_again(
    pool: PgPool,
) -> anyhow::Result<()> {
    let pool = Db::from(pool);
    setup(&pool).await;
    sqlx::query("DELETE FROM hang").execute(&pool).await?;
    let workflow = Workflow::create(&pool, "count_rows", &"orders").await?;
    sqlx::query(
        "INSERT INTO pgqrs.steps (run_id, seq, name, input, output, fingerprint)
         VALUES ($1, 0, 'fetch', '[\"orders\"]', '\"rows of others\"', 'elsewhere')",
    )
    .bind(workflow.run_id())
    .execute(&pool)
    .await?;

    let err = count_rows(&workflow, "orders").await.unwrap_err();
    assert!(
        matches!(pgqrs_error(&err), Error::LeaseLost { .. }),
        "{err:#}"
    );
    let recorded: String =
        sqlx::query_scalar("SELECT fingerprint FROM pgqrs.steps WHERE run_id = $1 AND seq = 0")
            .bind(workflow.run_id())
            .fetch_one(&pool)
            .await?;
    assert_eq!(recorded, "elsewhere", "the first record stays");
    assert_eq!(effects(&pool, "slow_count").await, 0);
    Ok(())
}

static BLOCKING: AtomicBool = AtomicBool::new(false);
static RELEASE: AtomicBool = AtomicBool::new(false);
static BLOCKED_RUN: AtomicI64 = AtomicI64::new(0);

#[pgqrs_step]
async fn wait_async(_ctx: &Workflow, ms: u64) -> anyhow::Result<u64> {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(ms)
}

#[pgqrs_step]
async fn block_thread(_ctx: &Workflow, ms: u64) -> anyhow::Result<u64> {
    BLOCKING.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(ms));
    // Blocked until the test has looked at the lease (at most 5 s more).
    for _ in 0..500 {
        if RELEASE.load(Ordering::SeqCst) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(ms)
}

#[pgqrs_workflow]
async fn wait_then_block(ctx: &Workflow, ms: u64) -> anyhow::Result<u64> {
    let waited = wait_async(ctx, ms).await?;
    block_thread(ctx, waited * 4).await
}

/// A run that outlives its first renewal is renewed from a task of its own, so a step that
/// blocks its thread (800 ms, and on until the test has looked, with a 300 ms lease) does
/// not let the lease run out. The run executes on a runtime with two worker threads, as an
/// application's would.
#[sqlx::test(migrations = "../migrations")]
async fn a_long_run_keeps_its_lease_while_a_step_blocks_its_thread(
    pool: PgPool,
) -> anyhow::Result<()> {
    let config = crate::common::direct_config(&pool).visibility_timeout(Duration::from_millis(300));
    let runner = std::thread::spawn(move || -> anyhow::Result<u64> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let run = Workflow::create(&config, "wait_then_block", &200u64).await?;
            BLOCKED_RUN.store(run.run_id(), Ordering::SeqCst);
            wait_then_block(&run, 200).await
        })
    });
    crate::common::wait_until(Duration::from_secs(10), || async {
        BLOCKING.load(Ordering::SeqCst)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let leased: Option<bool> = sqlx::query_scalar(
        "SELECT l.expires_at > now() FROM pgqrs.runs r JOIN pgqrs.leases l ON r.job_id = ANY (l.ids)
         WHERE r.id = $1",
    )
    .bind(BLOCKED_RUN.load(Ordering::SeqCst))
    .fetch_optional(&pool)
    .await?;
    RELEASE.store(true, Ordering::SeqCst);
    assert_eq!(
        leased,
        Some(true),
        "the lease ran out while the step blocked its thread"
    );

    let output = tokio::task::spawn_blocking(move || runner.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the runner thread panicked"))??;
    assert_eq!(output, 800);
    Ok(())
}
