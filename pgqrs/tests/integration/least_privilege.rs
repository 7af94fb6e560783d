//! Least privilege: an owner role installs pgqrs; an application role holding only the
//! grants of `Admin::grant_sql` runs queues, workers, dead letters and workflows, and is
//! refused every DDL.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use pgqrs::workflow::{Workflow, WorkflowFn};
use pgqrs::{
    Admin, Config, Error, HandlerOptions, Job, Producer, QueueOptions, Worker, pgqrs_step,
    pgqrs_workflow,
};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, PgPool};

use crate::common::wait_until;

#[derive(Debug, Serialize, Deserialize, Job)]
#[pgqrs(queue = "lp-tasks")]
struct Task {
    n: u32,
    fail: bool,
}

#[pgqrs_step]
async fn lp_double(ctx: &Workflow, n: u32) -> anyhow::Result<u32> {
    Ok(n * 2)
}

#[pgqrs_workflow]
async fn lp_flow(ctx: &Workflow, n: u32) -> anyhow::Result<u32> {
    let doubled = lp_double(ctx, n).await?;
    ctx.sleep(Duration::from_millis(10)).await?;
    let extra: u32 = ctx.recv("extra").await?;
    lp_double(ctx, doubled + extra).await
}

/// A pool logged in as `role` on the test database (trust auth: no password).
async fn pool_as(pool: &PgPool, role: &str) -> sqlx::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(6)
        .connect_with((*pool.connect_options()).clone().username(role))
        .await
}

/// Whether `result` is the server refusing for lack of privilege (or ownership).
fn refused<T: std::fmt::Debug>(result: &Result<T, sqlx::Error>) -> bool {
    matches!(result, Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42501"))
}

#[sqlx::test(migrations = false)]
async fn the_application_role_needs_only_the_documented_grants(pool: PgPool) -> anyhow::Result<()> {
    let suffix = format!("{}_{}", std::process::id(), fastrand::u32(..));
    let owner = format!("pgqrs_test_owner_{suffix}");
    let app = format!("pgqrs_test_app_{suffix}");
    let database = pool
        .connect_options()
        .get_database()
        .unwrap_or_default()
        .to_owned();
    sqlx::raw_sql(AssertSqlSafe(format!(
        r#"CREATE ROLE "{owner}" LOGIN; CREATE ROLE "{app}" LOGIN;
           GRANT CREATE ON DATABASE "{database}" TO "{owner}";"#
    )))
    .execute(&pool)
    .await?;

    // Roles are cluster-wide: drop them whatever the flow did, then report.
    let outcome = AssertUnwindSafe(flow(&pool, &owner, &app))
        .catch_unwind()
        .await;
    let cleanup = sqlx::raw_sql(AssertSqlSafe(format!(
        r#"DROP SCHEMA IF EXISTS pgqrs CASCADE;
           DROP OWNED BY "{owner}", "{app}" CASCADE;
           DROP ROLE "{owner}"; DROP ROLE "{app}";"#
    )))
    .execute(&pool)
    .await;
    match outcome {
        Err(panic) => std::panic::resume_unwind(panic),
        Ok(result) => result?,
    }
    cleanup?;
    Ok(())
}

async fn flow(pool: &PgPool, owner: &str, app: &str) -> anyhow::Result<()> {
    // The owner installs pgqrs and grants the application role its runtime privileges.
    let owner_pool = pool_as(pool, owner).await?;
    let owner_admin = Admin::new(&Config::from_pool(owner_pool.clone())).await?;
    owner_admin.install().await?;
    // As in a hardened database, where functions are not executable by everyone: the
    // claim is the function `pgqrs.job_claim_batch`.
    sqlx::raw_sql("REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pgqrs FROM PUBLIC")
        .execute(&owner_pool)
        .await?;
    sqlx::raw_sql(AssertSqlSafe(Admin::grant_sql(app)?))
        .execute(&owner_pool)
        .await?;

    let app_pool = pool_as(pool, app).await?;
    let config = Config::from_pool(app_pool.clone());
    let admin = Admin::new(&config).await?;
    admin.verify().await?;
    admin.install().await?; // already current: only reads

    // Queues, a worker, retries into dead letters, redrive.
    admin
        .create_queue_with("lp-tasks", QueueOptions::builder().max_attempts(2).build())
        .await?;
    let producer = Producer::<Task>::typed(&config).await?;
    let tasks: Vec<Task> = (0..20).map(|n| Task { n, fail: n == 7 }).collect();
    producer.enqueue_batch(&tasks).await?;
    let options = HandlerOptions::builder()
        .backoff(
            pgqrs::Backoff::builder()
                .base(Duration::from_millis(10))
                .max(Duration::from_millis(20))
                .jitter(0.0)
                .build(),
        )
        .build();
    let worker = Worker::builder()
        .config(config.clone())
        .name("lp-worker")
        .poll_interval(Duration::from_millis(50))
        .build()
        .handle_with(options, |job: Job<Task>| async move {
            if job.payload.fail {
                Err(format!("task {} fails", job.payload.n))
            } else {
                Ok(())
            }
        })
        .workflow::<lp_flow>()
        .start()
        .await?;
    wait_until(Duration::from_secs(20), || async {
        admin
            .queue_stats("lp-tasks")
            .await
            .is_ok_and(|s| s.dead == 1 && s.ready == 0 && s.leased == 0)
    })
    .await;
    let dead = admin.dead_letters("lp-tasks", 10).await?;
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].reason.contains("task 7 fails"),
        "{}",
        dead[0].reason
    );
    assert_eq!(admin.redrive_all("lp-tasks").await?, vec![dead[0].id]);
    assert!(!admin.list_workers().await?.is_empty());
    admin.pause_queue("lp-tasks").await?;
    admin.resume_queue("lp-tasks").await?;

    // A workflow run to completion through the worker: steps, a durable sleep, a signal.
    let run = <lp_flow as WorkflowFn>::enqueue(&app_pool, &5).await?;
    wait_until(Duration::from_secs(10), || async {
        run.status()
            .await
            .is_ok_and(|s| s == pgqrs::workflow::RunStatus::Waiting)
    })
    .await;
    Workflow::send(&app_pool, run.run_id(), "extra", &1u32).await?;
    let result: u32 = tokio::time::timeout(Duration::from_secs(10), run.result()).await??;
    assert_eq!(result, 22);
    // And one started by this process directly: it suspends at the sleep and the worker
    // finishes it.
    let direct = Workflow::create(&app_pool, "lp_flow", &1).await?;
    let suspended = lp_flow(&direct, 1).await;
    assert!(
        matches!(
            suspended.as_ref().map_err(|e| e.downcast_ref::<Error>()),
            Err(Some(Error::Suspended { .. }))
        ),
        "{suspended:?}"
    );
    Workflow::send(&app_pool, direct.run_id(), "extra", &0u32).await?;
    let result: u32 =
        tokio::time::timeout(Duration::from_secs(10), direct.handle().result()).await??;
    assert_eq!(result, 4);
    worker.shutdown(Duration::from_secs(5)).await?;
    admin.delete_queue("lp-tasks").await?;

    // DDL from the application role is refused.
    for ddl in [
        "CREATE TABLE pgqrs.x (id int)",
        "DROP TABLE pgqrs.jobs",
        "ALTER TABLE pgqrs.jobs ADD COLUMN x int",
        "CREATE INDEX ON pgqrs.jobs (payload)",
        "TRUNCATE pgqrs.jobs",
        "CREATE SCHEMA elsewhere",
        "CREATE OR REPLACE FUNCTION pgqrs.runs_check_transition() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
        "DELETE FROM pgqrs._sqlx_migrations",
        "DROP SCHEMA pgqrs CASCADE",
    ] {
        let result = sqlx::raw_sql(ddl).execute(&app_pool).await;
        assert!(refused(&result), "{ddl}: {result:?}");
    }
    match admin.uninstall().await {
        Err(err @ Error::PermissionDenied(_)) => {
            assert!(err.to_string().contains("schema owner"), "{err}");
        }
        other => panic!("uninstall as the application role: {other:?}"),
    }
    // A pending migration: only the owner may apply it.
    sqlx::query("DELETE FROM pgqrs._sqlx_migrations WHERE version = (SELECT max(version) FROM pgqrs._sqlx_migrations)")
        .execute(&owner_pool)
        .await?;
    match admin.install().await {
        Err(err @ (Error::Migrate(_) | Error::PermissionDenied(_))) => {
            assert!(err.to_string().contains("permission denied"), "{err}");
        }
        other => panic!("install as the application role: {other:?}"),
    }
    assert_eq!(
        owner_admin.describe_schema().await?,
        admin.describe_schema().await?,
        "both roles see the same schema"
    );
    owner_pool.close().await;
    app_pool.close().await;
    Ok(())
}
