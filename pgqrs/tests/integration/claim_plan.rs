//! The claim reads the same few pages whatever the backlog, and whatever the size of
//! `pgqrs.jobs` when its plan was made. The claim is the function `pgqrs.job_claim_batch`;
//! PL/pgSQL plans its statement once per connection, as a prepared statement would be, and
//! the buffers of the function's scan are those its statement read. Plan shapes and plan
//! counts are read from a mirror: the function's statement taken from the catalog and
//! prepared under the function's settings (`enable_seqscan = off`, `plan_cache_mode =
//! force_generic_plan`), or without them to show what they prevent.

use pgqrs::Producer;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Postgres, Row};

use crate::common::{in_snapshots, setup};

/// The claim function's signature, as `regprocedure` reads it.
const FUNCTION: &str =
    "pgqrs.job_claim_batch(integer, bigint, float8, bigint, boolean, bigint[], bigint[], text)";
const BATCH: i64 = 10;

async fn fill(producer: &Producer, jobs: usize) -> pgqrs::Result<()> {
    let chunk: Vec<Value> = (0..5_000)
        .map(|n| json!({ "n": n, "pad": "x".repeat(64) }))
        .collect();
    let mut left = jobs;
    while left > 0 {
        let take = left.min(chunk.len());
        producer.enqueue_batch(&chunk[..take]).await?;
        left -= take;
    }
    Ok(())
}

/// The claim's arguments: a batch of `batch` from `queue_id`, archiving `ids` held under
/// `tokens`.
fn claim_args(queue_id: i32, batch: i64, ids: &[i64], tokens: &[i64]) -> String {
    let list = |values: &[i64]| {
        let items: Vec<String> = values.iter().map(i64::to_string).collect();
        format!("'{{{}}}'", items.join(","))
    };
    format!(
        "({queue_id}, {batch}, 30, NULL, false, {}, {}, 'completed')",
        list(ids),
        list(tokens)
    )
}

/// The library's claim: a call of the function.
fn call(queue_id: i32, batch: i64, ids: &[i64], tokens: &[i64]) -> String {
    format!(
        "SELECT * FROM pgqrs.job_claim_batch{}",
        claim_args(queue_id, batch, ids, tokens)
    )
}

/// `EXECUTE` of the mirror [`prepare_mirror`] made.
pub(crate) fn execute_mirror(queue_id: i32, batch: i64, ids: &[i64], tokens: &[i64]) -> String {
    format!("EXECUTE mirror{}", claim_args(queue_id, batch, ids, tokens))
}

/// The claim statement inside the installed claim function (the one after its acks and
/// the hand-back of expired leases), byte for byte but for its PL/pgSQL variables.
async fn claim_statement(conn: &mut PgConnection) -> sqlx::Result<String> {
    let body: String =
        sqlx::query_scalar("SELECT prosrc FROM pg_proc WHERE oid = $1::regprocedure")
            .bind(FUNCTION)
            .fetch_one(&mut *conn)
            .await?;
    let start = body
        .find("RETURN QUERY")
        .map(|at| at + "RETURN QUERY".len());
    match (start, body.rfind(';')) {
        // The PL/pgSQL variables the function set before its statement stand in as what
        // they hold: the budget is the batch, the queue is neither paused nor capped.
        (Some(start), Some(end)) if start < end => Ok([
            ("claim_budget", "$2"),
            ("claim_expires", "(now() + make_interval(secs => $3))"),
            ("queue_paused", "false"),
            ("queue_cap", "NULL::integer"),
        ]
        .iter()
        .fold(
            body[start..end].to_string(),
            |statement, (variable, value)| statement.replace(variable, value),
        )),
        _ => Err(sqlx::Error::Protocol(format!(
            "no RETURN QUERY in {FUNCTION}: {body}"
        ))),
    }
}

/// Applies the claim function's own settings (`SET` clauses) to the session, or to the
/// transaction with `local`.
async fn apply_function_settings(conn: &mut PgConnection, local: bool) -> sqlx::Result<()> {
    let applied: Vec<String> = sqlx::query_scalar(
        "SELECT set_config(split_part(setting, '=', 1), substr(setting, strpos(setting, '=') + 1), $2)
         FROM unnest((SELECT proconfig FROM pg_proc WHERE oid = $1::regprocedure)) setting",
    )
    .bind(FUNCTION)
    .bind(local)
    .fetch_all(&mut *conn)
    .await?;
    assert_eq!(
        applied,
        ["off", "force_generic_plan"],
        "the function's settings"
    );
    Ok(())
}

/// Prepares the claim function's statement as `mirror` on `conn`; with `as_the_function`
/// the session plans with the function's settings.
pub(crate) async fn prepare_mirror(
    conn: &mut PgConnection,
    as_the_function: bool,
) -> sqlx::Result<()> {
    let statement = claim_statement(conn).await?;
    if as_the_function {
        apply_function_settings(conn, false).await?;
    }
    let prepare = format!(
        "PREPARE mirror(integer, bigint, float8, bigint, boolean, bigint[], bigint[], text) AS {statement}"
    );
    sqlx::raw_sql(AssertSqlSafe(prepare))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Plans every statement of the session generically from its first execution, as the
/// plan cache ends up doing. (The claim function does so for its statement by itself.)
pub(crate) async fn force_generic_plans(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::raw_sql("SET plan_cache_mode = force_generic_plan")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// `EXPLAIN {options}` of the claim function's statement, planned as the function plans
/// it, for a batch of `BATCH` acking `ids`; the session's settings and
/// prepared statements are left as they were.
pub(crate) async fn explain_mirror<T>(
    conn: &mut PgConnection,
    options: &str,
    queue_id: i32,
    ids: &[i64],
    tokens: &[i64],
) -> sqlx::Result<Vec<T>>
where
    T: for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres> + Send + Unpin,
{
    let statement = claim_statement(conn).await?;
    sqlx::raw_sql("BEGIN").execute(&mut *conn).await?;
    apply_function_settings(conn, true).await?;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "PREPARE plan_mirror(integer, bigint, float8, bigint, boolean, bigint[], bigint[], text) AS {statement}"
    )))
    .execute(&mut *conn)
    .await?;
    let explain = format!(
        "EXPLAIN ({options}) EXECUTE plan_mirror{}",
        claim_args(queue_id, BATCH, ids, tokens)
    );
    let plan = sqlx::query_scalar(AssertSqlSafe(explain))
        .fetch_all(&mut *conn)
        .await?;
    sqlx::raw_sql("DEALLOCATE plan_mirror; ROLLBACK")
        .execute(&mut *conn)
        .await?;
    Ok(plan)
}

/// Ids and lease tokens of the jobs a claim returned (rows without a job are skipped).
fn held(rows: &[sqlx::postgres::PgRow]) -> (Vec<i64>, Vec<i64>) {
    rows.iter()
        .filter_map(|row| {
            let id: Option<i64> = row.try_get("id").ok()?;
            let token: Option<i64> = row.try_get("lease_token").ok()?;
            id.zip(token)
        })
        .unzip()
}

/// `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` of `statement`; executed and rolled back.
async fn explain_analyze(conn: &mut PgConnection, statement: &str) -> sqlx::Result<Value> {
    sqlx::raw_sql("BEGIN").execute(&mut *conn).await?;
    let explain = format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {statement}");
    let plan: Value = sqlx::query_scalar(AssertSqlSafe(explain))
        .fetch_one(&mut *conn)
        .await?;
    sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await?;
    Ok(plan)
}

/// Shared buffers (hit + read) of a node of an `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)`.
pub(crate) fn shared_buffers(node: &Value) -> i64 {
    let blocks = |key: &str| node[key].as_i64().unwrap_or_default();
    blocks("Shared Hit Blocks") + blocks("Shared Read Blocks")
}

/// Shared buffers of one claim of `BATCH` jobs through the function that also archives
/// the previous batch; executed and rolled back.
async fn claim_buffers(conn: &mut PgConnection, queue_id: i32) -> sqlx::Result<i64> {
    let rows = sqlx::raw_sql(AssertSqlSafe(call(queue_id, BATCH, &[], &[])))
        .fetch_all(&mut *conn)
        .await?;
    let (ids, tokens) = held(&rows);
    assert_eq!(ids.len(), BATCH as usize);
    let plan = explain_analyze(conn, &call(queue_id, BATCH, &ids, &tokens)).await?;
    let top = &plan[0]["Plan"];
    // The row of the queue's controls, then a full batch.
    assert_eq!(top["Actual Rows"], json!(BATCH + 1), "a full batch: {plan}");
    Ok(shared_buffers(top))
}

/// Median over a few runs, so one autovacuum or cache hiccup does not decide.
async fn median_claim_buffers(conn: &mut PgConnection, queue_id: i32) -> sqlx::Result<i64> {
    let mut runs = Vec::new();
    for _ in 0..5 {
        runs.push(claim_buffers(conn, queue_id).await?);
    }
    runs.sort_unstable();
    Ok(runs[runs.len() / 2])
}

#[sqlx::test(migrations = "../migrations")]
async fn claim_cost_is_flat_from_1k_to_100k_deep_and_plan_is_pinned(
    pool: PgPool,
) -> pgqrs::Result<()> {
    let (config, _admin) = setup(pool.clone(), &["tasks", "other"]).await;
    let producer = Producer::new(&config, "tasks").await?;
    let queue_id = producer.queue().id;
    // Another queue's backlog shares the table and must not be read either.
    fill(&Producer::new(&config, "other").await?, 20_000).await?;
    // The function plans generically from its first call (`plan_cache_mode`).
    let mut conn = pool.acquire().await?;

    // Depths where a generic plan could prefer a hash join or a sort over the index.
    let mut buffers = Vec::new();
    for (add, depth) in [(1_000, "1k"), (19_000, "20k"), (80_000, "100k")] {
        fill(&producer, add).await?;
        sqlx::query("ANALYZE pgqrs.jobs").execute(&pool).await?;
        buffers.push((depth, median_claim_buffers(&mut conn, queue_id).await?));
    }
    println!("claim of {BATCH} with an ack of {BATCH}, shared buffers by depth: {buffers:?}");
    let shallow = buffers[0].1;
    for (depth, touched) in &buffers[1..] {
        assert!(
            touched * 2 <= shallow * 3,
            "claim touched {touched} buffers at {depth} deep vs {shallow} at 1k: cost grows with depth"
        );
    }

    let plan: Vec<String> =
        explain_mirror(&mut conn, "COSTS OFF", queue_id, &[1, 2], &[3, 4]).await?;
    in_snapshots(|| insta::assert_snapshot!("claim_plan_100k", plan.join("\n")));
    Ok(())
}

/// Generic and custom plans made by the connection so far for the mirror of the claim.
async fn plan_counts(conn: &mut PgConnection) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name = 'mirror'",
    )
    .fetch_one(&mut *conn)
    .await
}

/// `claims` claims of `batch` through the mirror, each archiving the batch before it.
async fn claim_through_mirror(
    conn: &mut PgConnection,
    queue_id: i32,
    batch: i64,
    claims: usize,
) -> sqlx::Result<()> {
    let (mut ids, mut tokens) = (Vec::new(), Vec::new());
    for _ in 0..claims {
        let claim = execute_mirror(queue_id, batch, &ids, &tokens);
        let rows = sqlx::raw_sql(AssertSqlSafe(claim))
            .fetch_all(&mut *conn)
            .await?;
        (ids, tokens) = held(&rows);
    }
    Ok(())
}

/// The claim is planned once per connection, never per call (planning this statement
/// costs more than running it): the function forces its generic plan.
#[sqlx::test(migrations = "../migrations")]
async fn the_claim_is_planned_once_per_connection(pool: PgPool) -> pgqrs::Result<()> {
    let (config, _admin) = setup(pool.clone(), &["tasks"]).await;
    let producer = Producer::new(&config, "tasks").await?;
    fill(&producer, 100).await?;
    let mut conn = pool.acquire().await?;
    prepare_mirror(&mut conn, true).await?;
    claim_through_mirror(&mut conn, producer.queue().id, 2, 20).await?;
    let (generic, custom) = plan_counts(&mut conn).await?;
    assert_eq!(
        (generic, custom),
        (20, 0),
        "(generic, custom) plans of 20 claims: the claim is planned on every call"
    );
    Ok(())
}

/// The queue `tasks` with 20 jobs, analyzed: `pgqrs.jobs` is one page when the first plans
/// are made. Returns its producer and id.
async fn short_queue(pool: &PgPool) -> pgqrs::Result<(Producer, i32)> {
    let (config, _admin) = setup(pool.clone(), &["tasks"]).await;
    let producer = Producer::new(&config, "tasks").await?;
    fill(&producer, 20).await?;
    sqlx::query("ANALYZE pgqrs.jobs").execute(pool).await?;
    let queue_id = producer.queue().id;
    Ok((producer, queue_id))
}

/// A connection whose first plans were made on a short queue does not plan the claim anew
/// once the table's statistics have moved (50,000 jobs in flight, 50,000 waiting).
/// Postgres plans anew while the generic plan costs more than the average of the first
/// custom plans. With per-job leases in `pgqrs.jobs` (migrations before 0008), all 100
/// claims were planned anew without the function's settings, at 0.5 ms each; with
/// per-batch leases the statement is simpler and 9 of 100 were (the same every run).
#[sqlx::test(migrations = "../migrations")]
async fn the_claim_is_not_planned_anew_after_the_tables_statistics_move(
    pool: PgPool,
) -> pgqrs::Result<()> {
    let (producer, queue_id) = short_queue(&pool).await?;
    // Two connections make their first plans on the short queue: one with the function's
    // settings, one without (how the claim was planned before it was a function).
    let mut library = pool.acquire().await?;
    prepare_mirror(&mut library, true).await?;
    claim_through_mirror(&mut library, queue_id, 1, 8).await?;
    let mut unfixed = pool.acquire().await?;
    prepare_mirror(&mut unfixed, false).await?;
    claim_through_mirror(&mut unfixed, queue_id, 1, 8).await?;

    // Then 50,000 jobs are in flight (handlers still at work) and 50,000 wait; autovacuum
    // analyzes the table after such a burst, which also invalidates the cached plans.
    fill(&producer, 100_000).await?;
    sqlx::query(
        "WITH taken AS (
           DELETE FROM pgqrs.jobs
           WHERE id IN (SELECT id FROM pgqrs.jobs ORDER BY id LIMIT 50000)
           RETURNING *),
         token AS (SELECT nextval('pgqrs.lease_tokens') AS token),
         moved AS (
           INSERT INTO pgqrs.archive (id, queue_id, payload, priority, attempts, enqueued_at,
                                      outcome, lease_token, run_at)
           SELECT id, queue_id, payload, priority, 1, enqueued_at, 'completed', token, run_at
           FROM taken, token RETURNING id)
         INSERT INTO pgqrs.leases (token, queue_id, expires_at, ids)
         SELECT token, $1, now() + interval '5 minutes', ARRAY(SELECT id FROM moved) FROM token",
    )
    .bind(queue_id)
    .execute(&pool)
    .await?;
    sqlx::query("ANALYZE pgqrs.jobs, pgqrs.archive, pgqrs.leases")
        .execute(&pool)
        .await?;
    let before = (
        plan_counts(&mut library).await?,
        plan_counts(&mut unfixed).await?,
    );
    claim_through_mirror(&mut library, queue_id, 1, 100).await?;
    claim_through_mirror(&mut unfixed, queue_id, 1, 100).await?;
    let custom = |after: (i64, i64), before: (i64, i64)| after.1 - before.1;
    let planned = custom(plan_counts(&mut library).await?, before.0);
    let unfixed_planned = custom(plan_counts(&mut unfixed).await?, before.1);
    println!(
        "of 100 claims after the burst, planned anew: {planned}; without the settings {unfixed_planned}"
    );
    assert_eq!(planned, 0, "{planned} of 100 claims were planned anew");
    assert!(
        unfixed_planned > 0,
        "without the function's settings only {unfixed_planned} of 100 claims were planned \
         anew: this test no longer reproduces the statistics drift"
    );
    Ok(())
}

/// A claim whose plan was made while `pgqrs.jobs` was one page still reads a few pages
/// after the table grew. Without the function's `enable_seqscan = off` (the mirror
/// without it, which is how the claim ran before), such a plan updated the picked rows
/// by sequential scan (`id = ANY(...)` over one page is cheapest so) and kept doing so
/// until an `ANALYZE` or `VACUUM` of the table invalidated it: every claim read the whole
/// table.
#[sqlx::test(migrations = "../migrations")]
async fn a_claim_planned_on_a_one_page_table_reads_few_pages_after_it_grows(
    pool: PgPool,
) -> pgqrs::Result<()> {
    let (producer, queue_id) = short_queue(&pool).await?;
    // The first execution makes each connection's generic plan, on the one-page table.
    let mut library = pool.acquire().await?;
    explain_analyze(&mut library, &call(queue_id, BATCH, &[], &[])).await?;
    let mut unfixed = pool.acquire().await?;
    force_generic_plans(&mut unfixed).await?;
    prepare_mirror(&mut unfixed, false).await?;
    let unfixed_claim = execute_mirror(queue_id, BATCH, &[], &[]);
    explain_analyze(&mut unfixed, &unfixed_claim).await?;

    fill(&producer, 50_000).await?;
    let plan = explain_analyze(&mut library, &call(queue_id, BATCH, &[], &[])).await?;
    let buffers = shared_buffers(&plan[0]["Plan"]);
    let unfixed_plan = explain_analyze(&mut unfixed, &unfixed_claim).await?;
    let unfixed_buffers = shared_buffers(&unfixed_plan[0]["Plan"]);
    println!(
        "claim of {BATCH} at 50,020 jobs planned at 20: {buffers} buffers; {unfixed_buffers} without the setting"
    );
    assert!(
        // Planned on the grown table, the same claim reads about 120 to 200.
        buffers <= 300,
        "a claim of {BATCH} read {buffers} buffers: {plan}"
    );
    assert!(
        unfixed_buffers > 1_000,
        "the statement without the function's setting read only {unfixed_buffers} buffers: \
         this test no longer reproduces the one-page plan"
    );
    Ok(())
}
