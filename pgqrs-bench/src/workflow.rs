//! F: a workflow of 3 no-op steps, runs/s and commits per run, next to the hand-written
//! floor (insert the run, insert 3 step rows, mark it done: 5 commits) and to the same floor
//! with a lease, the least a run driven through a lease writes (a lease row created with the
//! run, every step fenced by it, deleted when the run ends: still 5 commits).

use std::time::{Duration, Instant};

use anyhow::Result;
use futures::future::BoxFuture;
use pgqrs::workflow::Workflow;
use pgqrs::{pgqrs_step, pgqrs_workflow};
use sqlx::{AssertSqlSafe, PgPool};

use crate::Bench;
use crate::report::{Row, median};

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

type RunFn = fn(PgPool, u32) -> BoxFuture<'static, Result<()>>;

fn ours(pool: PgPool, n: u32) -> BoxFuture<'static, Result<()>> {
    Box::pin(async move {
        let workflow = Workflow::create(&pool, "three_noops", &n).await?;
        anyhow::ensure!(three_noops(&workflow, n).await? == n + 2);
        Ok(())
    })
}

fn floor(pool: PgPool, n: u32) -> BoxFuture<'static, Result<()>> {
    Box::pin(async move {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO raw.runs (status, input) VALUES ('running', $1) RETURNING id",
        )
        .bind(serde_json::json!(n))
        .fetch_one(&pool)
        .await?;
        for seq in 0..3u32 {
            sqlx::query("INSERT INTO raw.steps (run_id, seq, output) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(seq as i32)
                .bind(serde_json::json!(n + seq))
                .execute(&pool)
                .await?;
        }
        sqlx::query("UPDATE raw.runs SET status = 'succeeded', output = $2 WHERE id = $1")
            .bind(id)
            .bind(serde_json::json!(n + 2))
            .execute(&pool)
            .await?;
        Ok(())
    })
}

fn leased_floor(pool: PgPool, n: u32) -> BoxFuture<'static, Result<()>> {
    Box::pin(async move {
        let (id, token): (i64, i64) = sqlx::query_as(
            "WITH run AS (INSERT INTO raw.runs (status, input) VALUES ('running', $1) RETURNING id),
                  lease AS (INSERT INTO raw.run_leases (run_id, token, expires_at)
                            SELECT id, nextval('raw.run_lease_tokens'), now() + interval '30 s'
                            FROM run RETURNING run_id, token)
             SELECT run_id, token FROM lease",
        )
        .bind(serde_json::json!(n))
        .fetch_one(&pool)
        .await?;
        for seq in 0..3u32 {
            let recorded = sqlx::query(
                "INSERT INTO raw.steps (run_id, seq, output)
                 SELECT $1, $3, $4 FROM raw.run_leases WHERE run_id = $1 AND token = $2",
            )
            .bind(id)
            .bind(token)
            .bind(seq as i32)
            .bind(serde_json::json!(n + seq))
            .execute(&pool)
            .await?;
            anyhow::ensure!(recorded.rows_affected() == 1, "lease lost");
        }
        sqlx::query(
            "WITH lease AS (DELETE FROM raw.run_leases WHERE run_id = $1 AND token = $2 RETURNING 1)
             UPDATE raw.runs SET status = 'succeeded', output = $3
             WHERE id = $1 AND EXISTS (SELECT 1 FROM lease)",
        )
        .bind(id)
        .bind(token)
        .bind(serde_json::json!(n + 2))
        .execute(&pool)
        .await?;
        Ok(())
    })
}

pub(crate) async fn run(bench: &mut Bench) -> Result<()> {
    for statement in [
        "CREATE TABLE raw.runs (id bigserial PRIMARY KEY, status text NOT NULL, input jsonb NOT NULL,
           output jsonb, created_at timestamptz NOT NULL DEFAULT now())",
        "CREATE TABLE raw.steps (run_id bigint NOT NULL, seq integer NOT NULL, output jsonb NOT NULL,
           PRIMARY KEY (run_id, seq))",
        "CREATE TABLE raw.run_leases (run_id bigint PRIMARY KEY, token bigint NOT NULL,
           expires_at timestamptz NOT NULL)",
        "CREATE INDEX raw_run_leases_expiry ON raw.run_leases (expires_at)",
        "CREATE SEQUENCE raw.run_lease_tokens",
    ] {
        sqlx::query(AssertSqlSafe(statement)).execute(&bench.pool).await?;
    }
    let seconds = bench.seconds(6.0, 1.0);
    for clients in [1usize, 8] {
        eprintln!("[F] 3-step no-op workflow, {clients} client(s), {seconds:?} per measurement");
        let (mut our_rates, mut floor_rates, mut leased_rates) =
            (Vec::new(), Vec::new(), Vec::new());
        let (mut our_xids, mut floor_xids) = (0.0, 0.0);
        for _ in 0..bench.reps {
            let (rate, xids) = measure(&bench.pool, clients, seconds, ours).await?;
            our_rates.push(rate);
            our_xids = xids;
            let (rate, xids) = measure(&bench.pool, clients, seconds, floor).await?;
            floor_rates.push(rate);
            floor_xids = xids;
            leased_rates.push(
                measure(&bench.pool, clients, seconds, leased_floor)
                    .await?
                    .0,
            );
        }
        let ours_median = median(our_rates);
        for (baseline, rates, target) in [
            ("hand-written SQL floor", floor_rates, Some(0.8)),
            ("hand-written floor with a lease row", leased_rates, None),
        ] {
            bench.report.add(Row {
                scenario: format!("F 3-step workflow, {clients} client(s)"),
                unit: "runs/s",
                ours: ours_median,
                baseline,
                raw: median(rates),
                higher_is_better: true,
                target,
            });
        }
        bench.report.add(Row {
            scenario: format!("F commits per step, {clients} client(s)"),
            unit: "commits",
            ours: (our_xids - 2.0) / 3.0,
            baseline: "hand-written SQL floor",
            raw: (floor_xids - 2.0) / 3.0,
            higher_is_better: false,
            target: Some(1.0),
        });
    }
    bench.report.note(
        "Commits per step: write transactions per run (xids), minus the run's creation and finish, over its 3 steps."
            .to_owned(),
    );
    bench.report.note(
        "The floor with a lease row: the run and a 3-column lease row inserted together, each step inserted only while the lease row holds the run's token, the lease deleted as the run ends. The least a run driven through a lease writes; pgqrs's lease is a row of `pgqrs.leases` naming the run's job, which sits in the archive while the run executes, and a status trigger checks every transition."
            .to_owned(),
    );
    Ok(())
}

/// Runs `run` from `clients` tasks for `duration`; returns runs/s and xids per run.
async fn measure(
    pool: &PgPool,
    clients: usize,
    duration: Duration,
    run: RunFn,
) -> Result<(f64, f64)> {
    let next_xid = || async {
        let xmax: String =
            sqlx::query_scalar("SELECT pg_snapshot_xmax(pg_current_snapshot())::text")
                .fetch_one(pool)
                .await?;
        Ok::<f64, anyhow::Error>(xmax.parse().unwrap_or_default())
    };
    let before = next_xid().await?;
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for client in 0..clients {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0u32;
            while Instant::now() < deadline {
                run(pool.clone(), client as u32 * 1_000_000 + done).await?;
                done += 1;
            }
            Ok::<_, anyhow::Error>(done)
        }));
    }
    let mut total = 0u32;
    for task in tasks {
        total += task.await??;
    }
    let rate = f64::from(total) / started.elapsed().as_secs_f64();
    let xids = (next_xid().await? - before) / f64::from(total.max(1));
    Ok((rate, xids))
}
