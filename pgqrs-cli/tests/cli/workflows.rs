//! workflow list|show|cancel|retry.

use pgqrs::workflow::Workflow;
use pgqrs::{pgqrs_step, pgqrs_workflow};
use serde_json::json;
use sqlx::PgPool;

use crate::common::{in_snapshots, on, redact_json, redact_times};

#[pgqrs_step]
async fn double(ctx: &Workflow, n: i64) -> anyhow::Result<i64> {
    Ok(n * 2)
}

#[pgqrs_workflow]
async fn doubler(ctx: &Workflow, n: i64) -> anyhow::Result<i64> {
    let twice = double(ctx, n).await?;
    double(ctx, twice).await
}

#[sqlx::test(migrations = "../migrations")]
async fn workflow_commands(pool: PgPool) {
    assert_eq!(on(&pool, &["workflow", "list"]).ok(), "no workflow runs\n");

    // Run 1 succeeds with two recorded steps; runs 2 and 3 wait for a worker.
    let run = Workflow::create(&pool, "doubler", &5i64).await.unwrap();
    assert_eq!(doubler(&run, 5).await.unwrap(), 20);
    Workflow::enqueue(&pool, "report", &json!({"day": "monday"}))
        .await
        .unwrap();
    Workflow::enqueue(&pool, "report", &json!({"day": "tuesday"}))
        .await
        .unwrap();

    let list = on(&pool, &["workflow", "list"]).ok();
    let show = on(&pool, &["workflow", "show", "1"]).ok();
    let show_json = on(&pool, &["--json", "workflow", "show", "1"]).ok();
    in_snapshots(|| {
        insta::assert_snapshot!("cli_workflow_list", redact_times(&list));
        insta::assert_snapshot!("cli_workflow_show", redact_times(&show));
        insta::assert_snapshot!("cli_workflow_show_json", redact_json(&show_json));
    });

    // Cancel an active run; a finished one cannot be cancelled.
    assert_eq!(
        on(&pool, &["workflow", "cancel", "2"]).ok(),
        "cancelled workflow run 2 (it was pending)\n"
    );
    let line = on(&pool, &["workflow", "cancel", "2"]).fails(1);
    assert_eq!(
        line,
        "error: workflow run 2 has status cancelled: it cannot become cancelled"
    );
    on(&pool, &["workflow", "cancel", "1"]).fails(1);

    // Filters.
    let json: serde_json::Value = serde_json::from_str(
        &on(
            &pool,
            &["--json", "workflow", "list", "--status", "cancelled"],
        )
        .ok(),
    )
    .unwrap();
    let ids: Vec<i64> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [2]);
    let json: serde_json::Value = serde_json::from_str(
        &on(
            &pool,
            &[
                "--json",
                "workflow",
                "list",
                "--workflow",
                "report",
                "--limit",
                "1",
            ],
        )
        .ok(),
    )
    .unwrap();
    assert_eq!(json.as_array().map(Vec::len), Some(1));
    assert_eq!(json[0]["id"], 3);

    // Retry a cancelled run; a pending or succeeded one cannot be retried.
    let json: serde_json::Value =
        serde_json::from_str(&on(&pool, &["--json", "workflow", "retry", "2"]).ok()).unwrap();
    assert_eq!(
        json,
        json!({"run_id": 2, "was": "cancelled", "status": "pending"})
    );
    let line = on(&pool, &["workflow", "retry", "2"]).fails(1);
    assert_eq!(
        line,
        "error: workflow run 2 has status pending: it cannot become pending"
    );
    on(&pool, &["workflow", "retry", "1"]).fails(1);

    // The job driving a run is the run's business.
    let line = on(&pool, &["job", "cancel", "3"]).fails(2);
    assert!(line.contains("drives a workflow run"), "{line}");
}
