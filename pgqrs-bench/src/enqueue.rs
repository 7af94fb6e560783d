//! A: enqueue one job per call; B: enqueue batches of 100. Next to each baseline, the same
//! bare statement into `pgqrs.jobs`: how much of the gap is the table, how much pgqrs's
//! statement (the queue check, the wake-up, the options).

use std::future::Future;
use std::time::Instant;

use anyhow::Result;
use futures::future::try_join_all;
use pgqrs::Producer;
use serde_json::Value;
use sqlx::PgPool;

use crate::report::{Row, median};
use crate::{Bench, checkpoint, payload, raw};

/// Jobs per second of `n` jobs enqueued `per_call` at a time by `clients` concurrent
/// callers, after a checkpoint; `call` is given the number of the call's first job.
async fn rate<F, Fut>(
    pool: &PgPool,
    n: usize,
    per_call: usize,
    clients: usize,
    call: F,
) -> Result<f64>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    checkpoint(pool).await?;
    let calls = n / per_call;
    let start = Instant::now();
    try_join_all((0..clients).map(|client| {
        let call = &call;
        async move {
            for i in (client..calls).step_by(clients) {
                call(i * per_call).await?;
            }
            anyhow::Ok(())
        }
    }))
    .await?;
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn batch(first: usize) -> Vec<Value> {
    (first..first + 100).map(payload).collect()
}

pub(crate) async fn run(bench: &mut Bench, single: bool, batched: bool) -> Result<()> {
    let queue = bench.admin.create_queue("enqueue").await?.id;
    let producer = &Producer::new(&bench.config, "enqueue").await?;
    let quiet = &Producer::new(&bench.config.clone().notify(false), "enqueue").await?;
    let pool = &bench.pool;
    // One call of each contender, given the number of its job.
    let notified = |i| async move {
        producer.enqueue(&payload(i)).await?;
        anyhow::Ok(())
    };
    let unnotified_one = |i| async move {
        quiet.enqueue(&payload(i)).await?;
        anyhow::Ok(())
    };
    let raw_one = |i| async move {
        raw::insert_one(pool, &payload(i)).await?;
        anyhow::Ok(())
    };
    if single {
        let n = bench.size(5_000, 300);
        eprintln!("[A] enqueue 1 job per call, {n} jobs, 1 client");
        let [mut ours, mut unnotified, mut bare, mut theirs] = [(); 4].map(|_| Vec::new());
        for _ in 0..bench.reps {
            ours.push(rate(pool, n, 1, 1, notified).await?);
            unnotified.push(rate(pool, n, 1, 1, unnotified_one).await?);
            bare.push(
                rate(pool, n, 1, 1, |i| async move {
                    raw::insert_one_into_pgqrs(pool, queue, &payload(i)).await?;
                    Ok(())
                })
                .await?,
            );
            theirs.push(rate(pool, n, 1, 1, raw_one).await?);
        }
        let (ours, raw) = (median(ours), median(theirs));
        let bare = median(bare);
        bench.report.add(Row::jobs_per_second(
            "A enqueue, 1 per call",
            ours,
            "INSERT .. RETURNING",
            raw,
            Some(0.95),
        ));
        bench.report.add(Row::jobs_per_second(
            "A enqueue, 1 per call, NOTIFY off",
            median(unnotified),
            "INSERT .. RETURNING",
            raw,
            None,
        ));
        bench.report.add(Row::jobs_per_second(
            "A enqueue, 1 per call",
            ours,
            "the same bare INSERT into pgqrs.jobs",
            bare,
            None,
        ));
        bench.report.add(Row::jobs_per_second(
            "A the bare INSERT into pgqrs.jobs",
            bare,
            "INSERT .. RETURNING",
            raw,
            None,
        ));
    }
    if single {
        let (n, clients) = (bench.size(20_000, 800), 8);
        eprintln!("[A] enqueue 1 job per call, {n} jobs, {clients} clients");
        let [mut ours, mut unnotified, mut theirs] = [(); 3].map(|_| Vec::new());
        for _ in 0..bench.reps {
            ours.push(rate(pool, n, 1, clients, notified).await?);
            unnotified.push(rate(pool, n, 1, clients, unnotified_one).await?);
            theirs.push(rate(pool, n, 1, clients, raw_one).await?);
        }
        let raw = median(theirs);
        bench.report.add(Row::jobs_per_second(
            "A enqueue, 1 per call, 8 clients",
            median(ours),
            "INSERT .. RETURNING",
            raw,
            None,
        ));
        bench.report.add(Row::jobs_per_second(
            "A enqueue, 1 per call, 8 clients, NOTIFY off",
            median(unnotified),
            "INSERT .. RETURNING",
            raw,
            None,
        ));
    }
    if batched {
        let n = bench.size(50_000, 3_000);
        eprintln!("[B] enqueue batches of 100, {n} jobs, 1 client");
        let [mut ours, mut bare, mut theirs] = [(); 3].map(|_| Vec::new());
        for _ in 0..bench.reps {
            ours.push(
                rate(pool, n, 100, 1, |i| async move {
                    producer.enqueue_batch(&batch(i)).await?;
                    Ok(())
                })
                .await?,
            );
            bare.push(
                rate(pool, n, 100, 1, |i| async move {
                    raw::insert_batch_into_pgqrs(pool, queue, &batch(i)).await?;
                    Ok(())
                })
                .await?,
            );
            theirs.push(
                rate(pool, n, 100, 1, |i| async move {
                    raw::insert_batch(pool, &batch(i)).await?;
                    Ok(())
                })
                .await?,
            );
        }
        let (ours, bare, raw) = (median(ours), median(bare), median(theirs));
        bench.report.add(Row::jobs_per_second(
            "B enqueue, batches of 100",
            ours,
            "INSERT .. SELECT unnest",
            raw,
            Some(0.9),
        ));
        bench.report.add(Row::jobs_per_second(
            "B enqueue, batches of 100",
            ours,
            "the same bare INSERT into pgqrs.jobs",
            bare,
            None,
        ));
        bench.report.add(Row::jobs_per_second(
            "B the bare INSERT into pgqrs.jobs",
            bare,
            "INSERT .. SELECT unnest",
            raw,
            None,
        ));
    }
    bench.admin.delete_queue("enqueue").await?;
    raw::truncate(&bench.pool).await?;
    Ok(())
}
