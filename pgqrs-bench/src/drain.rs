//! C: draining a prefilled queue (dequeue + archive), by batch size and consumer count, and
//! at growing depth; W: WAL per job and table sizes after many jobs passed through.

use std::time::Instant;

use tokio::task::JoinHandle;

use anyhow::Result;
use pgqrs::{Consumer, Producer};
use serde_json::Value;
use sqlx::PgPool;

use crate::report::{Row, median};
use crate::{Bench, checkpoint, chunk_sizes, payload, raw};

/// Empties pgqrs's job tables, as `raw::truncate` empties the baseline's: each side then
/// drains from a fresh table, not one carrying the dead rows (and the autovacuum they are
/// due) of the scenarios before it.
pub(crate) async fn truncate_ours(pool: &PgPool) -> Result<()> {
    sqlx::query(
        "TRUNCATE pgqrs.jobs, pgqrs.archive, pgqrs.dead_letters, pgqrs.leases, pgqrs.job_keys",
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Enqueues `n` jobs into `queue` (created if needed), 1,000 per statement.
pub(crate) async fn fill(bench: &Bench, queue: &str, n: usize) -> Result<()> {
    bench.admin.create_queue(queue).await?;
    top_up(bench, queue, n).await
}

/// Appends `n` jobs to the existing `queue`, in batches of 1,000.
async fn top_up(bench: &Bench, queue: &str, n: usize) -> Result<()> {
    let producer = Producer::new(&bench.config, queue).await?;
    let batch: Vec<Value> = (0..1_000).map(payload).collect();
    for take in chunk_sizes(n, batch.len()) {
        producer.enqueue_batch(&batch[..take]).await?;
    }
    Ok(())
}

/// Drains up to `limit` jobs of `queue` with `consumers` consumers claiming `batch` at a
/// time; each ack rides on the consumer's next claim. Returns jobs/s.
pub(crate) async fn drain_ours(
    bench: &Bench,
    queue: &str,
    batch: usize,
    consumers: usize,
    limit: usize,
) -> Result<f64> {
    let share = limit.div_ceil(consumers);
    let mut opened = Vec::new();
    for _ in 0..consumers {
        opened.push(Consumer::new(&bench.config, queue).await?);
    }
    // The raw drains open nothing: the clock starts once the consumers exist.
    let start = Instant::now();
    let mut tasks = Vec::new();
    for consumer in opened {
        tasks.push(tokio::spawn(async move {
            let mut done = 0usize;
            let mut held: Vec<i64> = Vec::new();
            loop {
                let want = batch.min(share.saturating_sub(done));
                let handoff = consumer
                    .archive_and_dequeue(&held, "completed", want)
                    .await?;
                done += held.len();
                held = handoff.jobs.iter().map(|job| job.id).collect();
                if held.is_empty() {
                    return Ok(done);
                }
            }
        }));
    }
    jobs_per_second(start, tasks).await
}

/// Waits for the drain tasks started at `start`; jobs/s over all of them.
pub(crate) async fn jobs_per_second(
    start: Instant,
    tasks: Vec<JoinHandle<Result<usize>>>,
) -> Result<f64> {
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// The raw lease drain: claim, then archive, two statements per batch.
async fn drain_raw_lease(pool: &PgPool, batch: i64, consumers: usize, limit: usize) -> Result<f64> {
    drain_raw(pool, consumers, limit, move |pool| async move {
        let rows = raw::claim(&pool, batch).await?;
        let ids: Vec<i64> = rows.iter().map(|(id, _)| *id).collect();
        if !ids.is_empty() {
            raw::archive(&pool, &ids).await?;
        }
        Ok(ids.len())
    })
    .await
}

/// The single-statement drain: delete into the archive, no lease.
pub(crate) async fn drain_raw_single(
    pool: &PgPool,
    batch: i64,
    consumers: usize,
    limit: usize,
) -> Result<f64> {
    drain_raw(pool, consumers, limit, move |pool| async move {
        Ok(raw::take_and_archive(&pool, batch).await?.len())
    })
    .await
}

async fn drain_raw<F, Fut>(pool: &PgPool, consumers: usize, limit: usize, step: F) -> Result<f64>
where
    F: Fn(PgPool) -> Fut + Send + Sync + Copy + 'static,
    Fut: Future<Output = Result<usize>> + Send,
{
    let start = Instant::now();
    let share = limit.div_ceil(consumers);
    let mut tasks = Vec::new();
    for _ in 0..consumers {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0usize;
            while done < share {
                // The hand-written statements can deadlock too; rolled back, they are redone.
                let took = match step(pool.clone()).await {
                    Err(err) if err.to_string().contains("deadlock detected") => continue,
                    other => other?,
                };
                if took == 0 {
                    break;
                }
                done += took;
            }
            Ok(done)
        }));
    }
    jobs_per_second(start, tasks).await
}

/// Empties the baseline's tables, fills them with `n` jobs and checkpoints: each raw drain
/// of C starts as pgqrs's does.
async fn refill_raw(pool: &PgPool, n: usize) -> Result<()> {
    raw::truncate(pool).await?;
    raw::fill(pool, n).await?;
    checkpoint(pool).await
}

/// Who drains in a repetition of C.
#[derive(Debug, Clone, Copy)]
enum Side {
    Ours,
    Lease,
    Single,
}

pub(crate) async fn run(bench: &mut Bench) -> Result<()> {
    for (batch, consumers) in [(1usize, 1usize), (1, 4), (100, 1), (100, 4)] {
        let n = if batch == 1 {
            bench.size(4_000, 400)
        } else {
            bench.size(40_000, 4_000)
        };
        eprintln!("[C] drain {n} jobs, batch {batch}, {consumers} consumer(s)");
        let (mut ours, mut lease, mut single) = (Vec::new(), Vec::new(), Vec::new());
        // A drain lasts well under a second: nearly twice the usual repetitions, and every
        // other one in the reverse order, so that neither side always drains first (next
        // to the autovacuum and checkpoint work the previous drains left).
        let reps = bench.reps * 2 - 1;
        for rep in 0..reps {
            let queue = format!("drain-{batch}-{consumers}-{rep}");
            let sides = if rep % 2 == 0 {
                [Side::Ours, Side::Lease, Side::Single]
            } else {
                [Side::Single, Side::Lease, Side::Ours]
            };
            for side in sides {
                match side {
                    Side::Ours => {
                        truncate_ours(&bench.pool).await?;
                        fill(bench, &queue, n).await?;
                        checkpoint(&bench.pool).await?;
                        ours.push(drain_ours(bench, &queue, batch, consumers, n).await?);
                        bench.admin.delete_queue(&queue).await?;
                    }
                    Side::Lease => {
                        refill_raw(&bench.pool, n).await?;
                        lease.push(drain_raw_lease(&bench.pool, batch as i64, consumers, n).await?);
                    }
                    Side::Single => {
                        refill_raw(&bench.pool, n).await?;
                        single
                            .push(drain_raw_single(&bench.pool, batch as i64, consumers, n).await?);
                    }
                }
            }
            eprintln!(
                "    rep {}: pgqrs {:.0}, lease {:.0}, single {:.0} jobs/s",
                rep + 1,
                ours[rep],
                lease[rep],
                single[rep]
            );
        }
        let (ours, lease, single) = (median(ours), median(lease), median(single));
        let scenario = format!("C drain, batch {batch}, {consumers} consumer(s)");
        let (first, second) = if batch == 1 {
            (
                ("claim + archive, 2 statements", lease, Some(1.2)),
                ("single-statement limit", single, None),
            )
        } else {
            (
                ("single-statement limit", single, Some(0.8)),
                ("claim + archive, 2 statements", lease, None),
            )
        };
        for (baseline, raw, target) in [first, second] {
            bench
                .report
                .add(Row::jobs_per_second(&scenario, ours, baseline, raw, target));
        }
    }
    depth(bench).await
}

/// The first jobs of ever deeper queues: the claim must cost the same at any depth. All
/// queues are filled first and measured in turns, so drift on the machine hits every depth.
async fn depth(bench: &mut Bench) -> Result<()> {
    let depths = if bench.quick {
        vec![2_000, 20_000]
    } else {
        vec![5_000, 100_000, 1_000_000]
    };
    let first = bench.size(1_000, 200);
    truncate_ours(&bench.pool).await?;
    for &depth in &depths {
        eprintln!("[C] filling a queue {depth} deep");
        fill(bench, &format!("depth-{depth}"), depth).await?;
    }
    sqlx::query("VACUUM ANALYZE pgqrs.jobs")
        .execute(&bench.pool)
        .await?;
    // One repetition drains in about half a second, with a spread of +-15% between
    // repetitions (commit latency): three times the usual repetitions steady the medians.
    // Each queue is topped up after each repetition, so every one starts at its depth.
    let reps = bench.reps * 3;
    let mut ours = vec![Vec::new(); depths.len()];
    for rep in 0..reps {
        for (i, &depth) in depths.iter().enumerate() {
            let queue = format!("depth-{depth}");
            checkpoint(&bench.pool).await?;
            ours[i].push(drain_ours(bench, &queue, 1, 1, first).await?);
            top_up(bench, &queue, first).await?;
        }
        let this_rep: Vec<String> = ours
            .iter()
            .map(|rates| format!("{:.0}", rates[rep]))
            .collect();
        eprintln!(
            "    rep {}: pgqrs {} jobs/s at {depths:?} deep",
            rep + 1,
            this_rep.join(", ")
        );
    }
    let mut rates = Vec::new();
    for (i, &depth) in depths.iter().enumerate() {
        raw::truncate(&bench.pool).await?;
        raw::fill(&bench.pool, depth).await?;
        sqlx::query("VACUUM ANALYZE raw.jobs")
            .execute(&bench.pool)
            .await?;
        let mut theirs = Vec::new();
        for _ in 0..reps {
            checkpoint(&bench.pool).await?;
            theirs.push(drain_raw_lease(&bench.pool, 1, 1, first).await?);
            raw::fill(&bench.pool, first).await?;
        }
        let rate = median(std::mem::take(&mut ours[i]));
        rates.push(rate);
        bench.report.add(Row {
            scenario: format!("C first {first} of a queue {depth} deep, batch 1"),
            unit: "jobs/s",
            ours: rate,
            baseline: "claim + archive, 2 statements",
            raw: median(theirs),
            higher_is_better: true,
            target: None,
        });
        bench.admin.delete_queue(&format!("depth-{depth}")).await?;
    }
    if let (Some(shallow), Some(deep)) = (rates.first(), rates.last()) {
        bench.report.add(Row {
            scenario: format!(
                "C depth: {} deep vs {} deep",
                depths[depths.len() - 1],
                depths[0]
            ),
            unit: "jobs/s",
            ours: *deep,
            baseline: "pgqrs at the shallowest depth",
            raw: *shallow,
            higher_is_better: true,
            target: Some(0.9),
        });
    }
    raw::truncate(&bench.pool).await?;
    Ok(())
}

/// Runs `work` after a checkpoint; its result and the WAL it wrote per job, over `n` jobs.
pub(crate) async fn wal_per_job<T>(
    pool: &PgPool,
    n: usize,
    work: impl Future<Output = Result<T>>,
) -> Result<(T, f64)> {
    checkpoint(pool).await?;
    let start = wal_lsn(pool).await?;
    let done = work.await?;
    Ok((done, wal_since(pool, &start).await? / n as f64))
}

async fn wal_lsn(pool: &PgPool) -> Result<String> {
    Ok(sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
        .fetch_one(pool)
        .await?)
}

async fn wal_since(pool: &PgPool, lsn: &str) -> Result<f64> {
    Ok(
        sqlx::query_scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::float8")
            .bind(lsn)
            .fetch_one(pool)
            .await?,
    )
}

/// WAL written per job over a job's whole life (enqueue in batches of 100, claim, archive),
/// and the size of the hot tables after many jobs passed through.
pub(crate) async fn wal_and_size(bench: &mut Bench) -> Result<()> {
    let n = bench.size(20_000, 2_000);
    eprintln!("[W] WAL per job over enqueue + drain of {n} jobs");
    let (mut ours, mut lease, mut single) = (Vec::new(), Vec::new(), Vec::new());
    let batch: Vec<Value> = (0..100).map(payload).collect();
    for rep in 0..bench.reps {
        let queue = format!("wal-{rep}");
        truncate_ours(&bench.pool).await?;
        bench.admin.create_queue(&queue).await?;
        let producer = Producer::new(&bench.config, &queue).await?;
        let life = async {
            for _ in 0..n / 100 {
                producer.enqueue_batch(&batch).await?;
            }
            drain_ours(bench, &queue, 100, 1, n).await
        };
        ours.push(wal_per_job(&bench.pool, n, life).await?.1);
        bench.admin.delete_queue(&queue).await?;
        for (samples, single_statement) in [(&mut lease, false), (&mut single, true)] {
            raw::truncate(&bench.pool).await?;
            let life = async {
                for _ in 0..n / 100 {
                    raw::insert_batch(&bench.pool, &batch).await?;
                }
                if single_statement {
                    drain_raw_single(&bench.pool, 100, 1, n).await
                } else {
                    drain_raw_lease(&bench.pool, 100, 1, n).await
                }
            };
            samples.push(wal_per_job(&bench.pool, n, life).await?.1);
        }
    }
    let ours = median(ours);
    bench.report.add(Row {
        scenario: "W WAL per job (enqueue, claim, archive)".into(),
        unit: "bytes",
        ours,
        baseline: "claim + archive, 2 statements",
        raw: median(lease),
        higher_is_better: false,
        target: Some(1.0 / 1.1),
    });
    bench.report.add(Row {
        scenario: "W WAL per job (enqueue, claim, archive)".into(),
        unit: "bytes",
        ours,
        baseline: "single-statement limit",
        raw: median(single),
        higher_is_better: false,
        target: None,
    });
    size_after(bench).await
}

/// Passes many jobs through a queue, as a queue in service sees them, and reports the hot
/// tables' size as they go: bounded bloat means that once vacuum has run, later jobs reuse
/// the space earlier ones left, so the size stops growing. A plain `VACUUM` after every
/// tenth of the jobs stands in for autovacuum, which this machine's Postgres has off.
async fn size_after(bench: &mut Bench) -> Result<()> {
    const PERIODS: usize = 10;
    let n = bench.size(1_000_000, 20_000);
    let round = (n / PERIODS).min(10_000);
    eprintln!(
        "[W] {n} jobs through one queue, VACUUM every {}, and the hot tables' size",
        n / PERIODS
    );
    let queue = "throughput";
    bench.admin.create_queue(queue).await?;
    let producer = Producer::new(&bench.config, queue).await?;
    let batch: Vec<Value> = (0..1_000).map(payload).collect();
    truncate_ours(&bench.pool).await?;
    raw::truncate(&bench.pool).await?;
    let pool = bench.pool.clone();
    let size = |table: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT pg_total_relation_size($1::regclass)")
                .bind(table)
                .fetch_one(&pool)
                .await
                .map(|bytes| bytes as f64 / 1024.0 / 1024.0)
        }
    };
    // (ours, raw) at the end of each tenth, before its vacuum.
    let mut sizes = Vec::new();
    for _ in 0..PERIODS {
        // In rounds: enqueue a round, drain it.
        for _ in 0..n / PERIODS / round {
            for _ in 0..round / batch.len() {
                producer.enqueue_batch(&batch).await?;
                raw::insert_batch(&bench.pool, &batch).await?;
            }
            drain_ours(bench, queue, 100, 4, round).await?;
            drain_raw_lease(&bench.pool, 100, 4, round).await?;
        }
        // pgqrs's hot tables: the waiting jobs and the leases of batches in flight.
        sizes.push((
            size("pgqrs.jobs").await? + size("pgqrs.leases").await?,
            size("raw.jobs").await?,
        ));
        sqlx::query("VACUUM pgqrs.jobs, pgqrs.leases, raw.jobs")
            .execute(&bench.pool)
            .await?;
    }
    let phrases = [
        (1, format!("the first tenth of {n} jobs")),
        (PERIODS / 2, format!("the first half of {n} jobs")),
        (PERIODS, format!("all {n} jobs")),
    ];
    for (tenths, phrase) in phrases {
        let (ours, raw) = sizes[tenths - 1];
        bench.report.add(Row {
            scenario: format!("W hot table + indexes after {phrase}"),
            unit: "MB",
            ours,
            baseline: "raw lease table",
            raw,
            higher_is_better: false,
            target: None,
        });
    }
    let archive = size("pgqrs.archive").await?;
    let (half, last) = (sizes[PERIODS / 2 - 1].0, sizes[PERIODS - 1].0);
    let verdict = if last <= half * 1.1 {
        "bounded: after the first vacuums, later jobs reused the space earlier ones left"
    } else {
        "still growing: the space vacuum freed was not enough"
    };
    let trail: Vec<String> = sizes.iter().map(|(ours, _)| format!("{ours:.1}")).collect();
    bench.report.note(format!(
        "Bloat: {n} jobs went through one queue in rounds of {round}, with a plain VACUUM after every {} \
         (standing in for autovacuum, off on this machine). The hot table (with its indexes) measured, \
         MB after each tenth: {}; {verdict}. The archive holds the {n} jobs in {archive:.0} MB.",
        n / PERIODS,
        trail.join(", ")
    ));
    Ok(())
}
