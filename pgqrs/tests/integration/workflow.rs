//! Durable workflows: step identity, replay after failures and crashes, racing executors,
//! durable sleep, signals, cancellation, schema and version changes.

use std::sync::Arc;
use std::time::Duration;

use pgqrs::Db;
use pgqrs::workflow::{RunState, RunStatus, Workflow, WorkflowFn};
use pgqrs::{Error, Worker, WorkerHandle, pgqrs_step, pgqrs_workflow};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::common::wait_until;

/// Every step body records one row in `effects`, so that tests count executions.
pub(crate) async fn effect(ctx: &Workflow, step: &str) -> anyhow::Result<()> {
    sqlx::query("INSERT INTO effects (step, run_id) VALUES ($1, $2)")
        .bind(step)
        .bind(ctx.run_id())
        .execute(ctx.pool())
        .await?;
    Ok(())
}

pub(crate) async fn with_effects(pool: &Db) {
    sqlx::query("CREATE TABLE effects (step text NOT NULL, run_id bigint NOT NULL)")
        .execute(pool)
        .await
        .unwrap();
}

pub(crate) async fn effects(pool: &Db, step: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM effects WHERE step = $1")
        .bind(step)
        .fetch_one(pool)
        .await
        .unwrap()
}

pub(crate) fn pgqrs_error(err: &anyhow::Error) -> &Error {
    err.downcast_ref::<Error>()
        .unwrap_or_else(|| panic!("not a pgqrs error: {err:#}"))
}

async fn start_worker<W: WorkflowFn>(pool: &Db, lease: Duration) -> WorkerHandle {
    Worker::builder()
        .config(crate::common::config(pool))
        .visibility_timeout(lease)
        .poll_interval(Duration::from_millis(100))
        .build()
        .workflow::<W>()
        .start()
        .await
        .unwrap()
}

// ---- step identity: (run, name, call sequence) ----

#[pgqrs_step]
async fn add_one(ctx: &Workflow, n: i64) -> anyhow::Result<i64> {
    effect(ctx, "add_one").await?;
    Ok(n + 1)
}

#[pgqrs_workflow]
async fn twice(ctx: &Workflow, start: i64) -> anyhow::Result<Vec<i64>> {
    let a = add_one(ctx, start).await?;
    let b = add_one(ctx, start * 10).await?;
    Ok(vec![a, b])
}

#[sqlx::test(migrations = "../migrations")]
async fn one_step_called_twice_is_two_steps(pool: PgPool) -> anyhow::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    with_effects(&pool).await;
    let workflow = Workflow::create(&pool, "twice", &10).await?;
    assert_eq!(twice(&workflow, 10).await?, vec![11, 101]);
    let steps: Vec<(i32, String, serde_json::Value)> =
        sqlx::query_as("SELECT seq, name, output FROM pgqrs.steps ORDER BY seq")
            .fetch_all(&pool)
            .await?;
    assert_eq!(
        steps,
        vec![
            (0, "add_one".into(), serde_json::json!(11)),
            (1, "add_one".into(), serde_json::json!(101))
        ]
    );
    // Calling it again returns the recorded result and runs nothing.
    assert_eq!(twice(&workflow, 10).await?, vec![11, 101]);
    assert_eq!(effects(&pool, "add_one").await, 2);
    assert_eq!(workflow.handle().status().await?, RunStatus::Succeeded);
    let result: Vec<i64> = workflow.handle().result().await?;
    assert_eq!(result, vec![11, 101]);
    Ok(())
}

// ---- resume after failures and crashes replays recorded outputs ----

#[pgqrs_step]
async fn load(ctx: &Workflow, key: &str) -> anyhow::Result<String> {
    effect(ctx, "load").await?;
    Ok(format!("data:{key}"))
}

#[pgqrs_step]
async fn transform(ctx: &Workflow, data: String) -> anyhow::Result<usize> {
    effect(ctx, "transform").await?;
    Ok(data.len())
}

#[pgqrs_step]
async fn publish(ctx: &Workflow, size: usize) -> anyhow::Result<String> {
    effect(ctx, "publish").await?;
    let attempts: i64 = sqlx::query_scalar("SELECT count(*) FROM effects WHERE step = 'publish'")
        .fetch_one(ctx.pool())
        .await?;
    match attempts {
        1 => anyhow::bail!("the publisher is down"),
        2 => {
            // The second attempt hangs until its caller gives up (a crash).
            tokio::time::sleep(Duration::from_secs(3600)).await;
            unreachable!()
        }
        _ => Ok(format!("published {size} bytes")),
    }
}

#[pgqrs_workflow]
async fn pipeline(ctx: &Workflow, key: &str) -> anyhow::Result<String> {
    let data = load(ctx, key).await?;
    let size = transform(ctx, data).await?;
    publish(ctx, size).await
}

#[sqlx::test(migrations = "../migrations")]
async fn resumed_runs_replay_recorded_steps_without_running_them(
    pool: PgPool,
) -> anyhow::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    with_effects(&pool).await;
    let config = crate::common::config(&pool).visibility_timeout(Duration::from_millis(600));

    // 1. A step fails: the run fails, its first two steps recorded.
    let workflow = Workflow::create(&config, "pipeline", &"k1").await?;
    let err = pipeline(&workflow, "k1").await.unwrap_err();
    assert!(err.to_string().contains("publisher is down"));
    let RunState::Failed(failed) = workflow.handle().state().await? else {
        panic!("expected a failed run");
    };
    assert!(failed.error().contains("publisher is down"));

    // 2. Retried: a worker resumes it, and its executor "crashes" in the publish step.
    let handle = failed.retry().await?;
    assert_eq!(handle.status().await?, RunStatus::Pending);
    let crashing = start_worker::<pipeline>(&pool, Duration::from_millis(600)).await;
    wait_until(Duration::from_secs(10), || async {
        effects(&pool, "publish").await == 2
    })
    .await;
    crashing.shutdown(Duration::from_millis(50)).await?; // aborts the hanging step

    // 3. Another worker finishes it.
    let finishing = start_worker::<pipeline>(&pool, Duration::from_millis(600)).await;
    let result: String = tokio::time::timeout(Duration::from_secs(10), handle.result()).await??;
    finishing.shutdown(Duration::from_secs(5)).await?;
    assert_eq!(result, "published 7 bytes");
    assert_eq!(
        effects(&pool, "load").await,
        1,
        "recorded step never ran again"
    );
    assert_eq!(
        effects(&pool, "transform").await,
        1,
        "recorded step never ran again"
    );
    assert_eq!(
        effects(&pool, "publish").await,
        3,
        "the unrecorded step ran until it was recorded"
    );
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn a_dropped_direct_execution_is_resumed_by_a_worker(pool: PgPool) -> anyhow::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    with_effects(&pool).await;
    // Attempt 1 of publish fails fast; make it count as done so attempt 2 hangs.
    sqlx::query("INSERT INTO effects VALUES ('publish', 0)")
        .execute(&pool)
        .await?;
    let config = crate::common::config(&pool).visibility_timeout(Duration::from_millis(600));
    let workflow = Arc::new(Workflow::create(&config, "pipeline", &"key").await?);
    // The caller gives up (as if it crashed) once the third step hangs.
    let executing = tokio::spawn({
        let workflow = Arc::clone(&workflow);
        async move { pipeline(&workflow, "key").await }
    });
    wait_until(Duration::from_secs(10), || async {
        effects(&pool, "publish").await == 2
    })
    .await;
    executing.abort();
    assert!(executing.await.is_err_and(|e| e.is_cancelled()));
    assert_eq!(workflow.handle().status().await?, RunStatus::Running);

    let worker = start_worker::<pipeline>(&pool, Duration::from_millis(600)).await;
    let result: String =
        tokio::time::timeout(Duration::from_secs(10), workflow.handle().result()).await??;
    worker.shutdown(Duration::from_secs(5)).await?;
    assert_eq!(result, "published 8 bytes");
    assert_eq!(
        (
            effects(&pool, "load").await,
            effects(&pool, "transform").await
        ),
        (1, 1)
    );
    Ok(())
}

// ---- two executors on one run ----

#[sqlx::test(migrations = "../migrations")]
async fn of_two_executors_one_wins_and_the_other_loses_its_lease(
    pool: PgPool,
) -> anyhow::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    with_effects(&pool).await;
    let config = crate::common::config(&pool).visibility_timeout(Duration::from_millis(300));
    let stale = Workflow::create(&config, "twice", &1).await?;
    tokio::time::sleep(Duration::from_millis(500)).await; // its lease runs out unused

    let worker = start_worker::<twice>(&pool, Duration::from_secs(5)).await;
    let winner: Vec<i64> =
        tokio::time::timeout(Duration::from_secs(10), stale.handle().result()).await??;
    worker.shutdown(Duration::from_secs(5)).await?;
    assert_eq!(winner, vec![2, 11]);

    let loser = twice(&stale, 1).await.unwrap_err();
    assert!(
        matches!(pgqrs_error(&loser), Error::LeaseLost { .. }),
        "{loser:#}"
    );
    let steps: i64 = sqlx::query_scalar("SELECT count(*) FROM pgqrs.steps")
        .fetch_one(&pool)
        .await?;
    assert_eq!(steps, 2, "each step recorded once, by the winner");
    Ok(())
}

// ---- durable sleep ----

#[pgqrs_step]
async fn before_nap(ctx: &Workflow) -> anyhow::Result<u32> {
    effect(ctx, "before").await?;
    Ok(1)
}

#[pgqrs_step]
async fn after_nap(ctx: &Workflow, n: u32) -> anyhow::Result<u32> {
    effect(ctx, "after").await?;
    Ok(n + 1)
}

#[pgqrs_workflow]
async fn napper(ctx: &Workflow, secs: u64) -> anyhow::Result<u32> {
    let n = before_nap(ctx).await?;
    ctx.sleep(Duration::from_secs(secs)).await?;
    after_nap(ctx, n).await
}

#[sqlx::test(migrations = "../migrations")]
async fn a_durable_sleep_survives_a_worker_restart(pool: PgPool) -> anyhow::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    with_effects(&pool).await;
    let run = <napper as WorkflowFn>::enqueue(&pool, &2).await?;
    let first = start_worker::<napper>(&pool, Duration::from_secs(5)).await;
    wait_until(Duration::from_secs(5), || async {
        run.status().await.unwrap() == RunStatus::Sleeping
    })
    .await;
    first.shutdown(Duration::from_secs(5)).await?;
    let held: i64 = sqlx::query_scalar("SELECT count(*) FROM pgqrs.leases")
        .fetch_one(&pool)
        .await?;
    assert_eq!(held, 0, "a sleeping run holds no worker");

    let second = start_worker::<napper>(&pool, Duration::from_secs(5)).await;
    let result: u32 = tokio::time::timeout(Duration::from_secs(10), run.result()).await??;
    second.shutdown(Duration::from_secs(5)).await?;
    assert_eq!(result, 2);
    assert_eq!(
        (
            effects(&pool, "before").await,
            effects(&pool, "after").await
        ),
        (1, 1)
    );
    Ok(())
}

// ---- signals ----

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
struct Approval {
    by: String,
}

#[pgqrs_workflow]
async fn approval(ctx: &Workflow, document: String) -> anyhow::Result<String> {
    let first: Approval = ctx.recv("approval").await?;
    let second: Approval = ctx.recv("approval").await?;
    Ok(format!(
        "{document} approved by {} and {}",
        first.by, second.by
    ))
}

#[sqlx::test(migrations = "../migrations")]
async fn signals_wake_a_waiting_run_once_each(pool: PgPool) -> anyhow::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    let run = <approval as WorkflowFn>::enqueue(&pool, &"contract".to_string()).await?;
    // One signal before the run even starts waiting, one while it waits.
    Workflow::send(
        &pool,
        run.run_id(),
        "approval",
        &Approval { by: "ana".into() },
    )
    .await?;
    let worker = start_worker::<approval>(&pool, Duration::from_secs(5)).await;
    wait_until(Duration::from_secs(5), || async {
        run.status().await.unwrap() == RunStatus::Waiting
    })
    .await;
    Workflow::send(
        &pool,
        run.run_id(),
        "approval",
        &Approval { by: "bo".into() },
    )
    .await?;
    let result: String = tokio::time::timeout(Duration::from_secs(10), run.result()).await??;
    worker.shutdown(Duration::from_secs(5)).await?;
    assert_eq!(result, "contract approved by ana and bo");
    match Workflow::send(
        &pool,
        run.run_id(),
        "approval",
        &Approval { by: "late".into() },
    )
    .await
    {
        Err(Error::IllegalTransition {
            from: RunStatus::Succeeded,
            ..
        }) => {}
        other => panic!("expected IllegalTransition, got {other:?}"),
    }
    Ok(())
}

// ---- cancellation and retry ----

#[sqlx::test(migrations = "../migrations")]
async fn a_cancelled_run_stops_and_can_be_retried(pool: PgPool) -> anyhow::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    with_effects(&pool).await;
    let run = <napper as WorkflowFn>::enqueue(&pool, &3600).await?;
    let worker = start_worker::<napper>(&pool, Duration::from_secs(5)).await;
    wait_until(Duration::from_secs(5), || async {
        run.status().await.unwrap() == RunStatus::Sleeping
    })
    .await;
    let RunState::Active(active) = run.state().await? else {
        panic!("a sleeping run is active");
    };
    active.cancel().await?;
    assert_eq!(run.status().await?, RunStatus::Cancelled);
    assert!(matches!(
        run.result::<u32>().await,
        Err(Error::Cancelled { .. })
    ));
    assert!(matches!(
        run.cancel().await,
        Err(Error::IllegalTransition {
            from: RunStatus::Cancelled,
            to: RunStatus::Cancelled,
            ..
        })
    ));
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM pgqrs.jobs")
        .fetch_one(&pool)
        .await?;
    assert_eq!(jobs, 0, "a cancelled run has no job");

    // Illegal transitions are refused by the database itself, too.
    let direct = sqlx::query("UPDATE pgqrs.runs SET status = 'running' WHERE id = $1")
        .bind(run.run_id())
        .execute(&pool)
        .await;
    assert!(
        direct
            .unwrap_err()
            .to_string()
            .contains("illegal workflow run transition")
    );

    // Retried, it resumes after its recorded step: the sleep counts as done.
    let RunState::Cancelled(cancelled) = run.state().await? else {
        panic!("cancelled");
    };
    cancelled.retry().await?;
    let result: u32 = tokio::time::timeout(Duration::from_secs(10), run.result()).await??;
    worker.shutdown(Duration::from_secs(5)).await?;
    assert_eq!(result, 2);
    assert_eq!(effects(&pool, "before").await, 1);
    Ok(())
}

// ---- output type changes under a recorded run ----

#[derive(Serialize, Deserialize, JsonSchema)]
struct Score {
    points: i32,
}

#[derive(Serialize, Deserialize, JsonSchema)]
struct ScoreV2 {
    points: String,
    bonus: bool,
}

#[pgqrs_step(name = "score")]
async fn score_v1(_ctx: &Workflow) -> anyhow::Result<Score> {
    Ok(Score { points: 7 })
}

#[pgqrs_step(name = "score")]
async fn score_v2(_ctx: &Workflow) -> anyhow::Result<ScoreV2> {
    Ok(ScoreV2 {
        points: "7".into(),
        bonus: true,
    })
}

#[pgqrs_step]
async fn flaky(_ctx: &Workflow) -> anyhow::Result<()> {
    anyhow::bail!("flaky failure")
}

#[pgqrs_workflow(name = "scoring")]
async fn scoring_v1(ctx: &Workflow) -> anyhow::Result<i32> {
    let score = score_v1(ctx).await?;
    flaky(ctx).await?;
    Ok(score.points)
}

#[pgqrs_workflow(name = "scoring")]
async fn scoring_v2(ctx: &Workflow) -> anyhow::Result<i32> {
    let score = score_v2(ctx).await?;
    Ok(i32::from(score.bonus))
}

#[sqlx::test(migrations = "../migrations")]
async fn a_changed_step_output_type_is_detected_not_misread(pool: PgPool) -> anyhow::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    let workflow = Workflow::create(&pool, "scoring", &()).await?;
    assert!(scoring_v1(&workflow).await.is_err());
    let RunState::Failed(failed) = workflow.handle().state().await? else {
        panic!("failed");
    };
    failed.retry().await?;
    // The new code resumes the run: the recorded `score` has the old schema.
    let worker = start_worker::<scoring_v2>(&pool, Duration::from_secs(5)).await;
    let outcome =
        tokio::time::timeout(Duration::from_secs(10), workflow.handle().result::<i32>()).await?;
    worker.shutdown(Duration::from_secs(5)).await?;
    match outcome {
        Err(Error::WorkflowFailed { error, .. }) => {
            assert!(error.contains("step `score` (#0)"), "{error}");
            assert!(
                error.contains("recorded with another output type"),
                "{error}"
            );
        }
        other => panic!("expected the run to fail on the schema change, got {other:?}"),
    }
    Ok(())
}

// ---- versions ----

#[pgqrs_workflow(name = "versioned", version = "2")]
async fn versioned_v2(_ctx: &Workflow) -> anyhow::Result<u32> {
    Ok(2)
}

#[pgqrs_workflow(name = "versioned", version = "3")]
async fn versioned_v3(_ctx: &Workflow) -> anyhow::Result<u32> {
    Ok(3)
}

#[sqlx::test(migrations = "../migrations")]
async fn runs_of_another_version_are_detected(pool: PgPool) -> anyhow::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    let workflow = <versioned_v2 as WorkflowFn>::create(&pool, &()).await?;
    let err = versioned_v3(&workflow).await.unwrap_err();
    match pgqrs_error(&err) {
        Error::VersionMismatch {
            run_version,
            code_version,
            ..
        } => {
            assert_eq!((run_version.as_str(), code_version.as_str()), ("2", "3"));
        }
        other => panic!("expected VersionMismatch, got {other:?}"),
    }
    assert_eq!(versioned_v2(&workflow).await?, 2);
    let wrong_name = twice(&workflow, 1).await.unwrap_err();
    assert!(
        wrong_name.to_string().contains("not `twice`"),
        "{wrong_name:#}"
    );
    Ok(())
}

// ---- step retries from attributes ----

#[pgqrs_step(retries = 2, backoff = "20ms")]
async fn shaky(ctx: &Workflow) -> anyhow::Result<String> {
    effect(ctx, "shaky").await?;
    let tries: i64 = sqlx::query_scalar("SELECT count(*) FROM effects WHERE step = 'shaky'")
        .fetch_one(ctx.pool())
        .await?;
    anyhow::ensure!(tries >= 3, "attempt {tries} failed");
    Ok("steady".to_string())
}

#[pgqrs_step(retries = 1, backoff = "10ms")]
async fn hopeless(ctx: &Workflow) -> anyhow::Result<u8> {
    effect(ctx, "hopeless").await?;
    anyhow::bail!("never works")
}

#[pgqrs_workflow]
async fn retrying(ctx: &Workflow, give_up: bool) -> anyhow::Result<String> {
    let word = shaky(ctx).await?;
    if give_up {
        hopeless(ctx).await?;
    }
    Ok(word)
}

#[sqlx::test(migrations = "../migrations")]
async fn steps_retry_with_backoff_as_their_attribute_says(pool: PgPool) -> anyhow::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    with_effects(&pool).await;
    let started = std::time::Instant::now();
    let workflow = Workflow::create(&pool, "retrying", &false).await?;
    assert_eq!(retrying(&workflow, false).await?, "steady");
    assert!(
        started.elapsed() >= Duration::from_millis(60),
        "waited 20 ms, then 40 ms"
    );
    let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM pgqrs.steps WHERE name = 'shaky'")
        .fetch_one(&pool)
        .await?;
    assert_eq!((attempts, effects(&pool, "shaky").await), (3, 3));

    let exhausted = Workflow::create(&pool, "retrying", &true).await?;
    let err = retrying(&exhausted, true).await.unwrap_err();
    assert!(err.to_string().contains("never works"));
    assert_eq!(effects(&pool, "hopeless").await, 2, "one try and one retry");
    assert_eq!(exhausted.handle().status().await?, RunStatus::Failed);
    Ok(())
}
