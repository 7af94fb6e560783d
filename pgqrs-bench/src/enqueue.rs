//! A: enqueue one job per call; B: enqueue batches of 100.

use std::time::Instant;

use anyhow::Result;
use pgqrs::Producer;
use serde_json::Value;

use crate::report::{Row, median};
use crate::{Bench, checkpoint, payload, raw};

pub(crate) async fn run(bench: &mut Bench, single: bool, batched: bool) -> Result<()> {
    bench.admin.create_queue("enqueue").await?;
    let producer = Producer::new(&bench.config, "enqueue").await?;
    let quiet = Producer::new(&bench.config.clone().notify(false), "enqueue").await?;
    if single {
        let n = bench.size(5_000, 300);
        eprintln!("[A] enqueue 1 job per call, {n} jobs, 1 client");
        let (mut ours, mut theirs, mut unnotified) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..bench.reps {
            checkpoint(&bench.pool).await?;
            let start = Instant::now();
            for i in 0..n {
                producer.enqueue(&payload(i)).await?;
            }
            ours.push(n as f64 / start.elapsed().as_secs_f64());
            checkpoint(&bench.pool).await?;
            let start = Instant::now();
            for i in 0..n {
                quiet.enqueue(&payload(i)).await?;
            }
            unnotified.push(n as f64 / start.elapsed().as_secs_f64());
            checkpoint(&bench.pool).await?;
            let start = Instant::now();
            for i in 0..n {
                raw::insert_one(&bench.pool, &payload(i)).await?;
            }
            theirs.push(n as f64 / start.elapsed().as_secs_f64());
        }
        let raw = median(theirs);
        bench.report.add(Row {
            scenario: "A enqueue, 1 per call".into(),
            unit: "jobs/s",
            ours: median(ours),
            baseline: "INSERT .. RETURNING",
            raw,
            higher_is_better: true,
            target: Some(0.95),
        });
        bench.report.add(Row {
            scenario: "A enqueue, 1 per call, NOTIFY off".into(),
            unit: "jobs/s",
            ours: median(unnotified),
            baseline: "INSERT .. RETURNING",
            raw,
            higher_is_better: true,
            target: None,
        });
    }
    if batched {
        let n = bench.size(50_000, 3_000);
        eprintln!("[B] enqueue batches of 100, {n} jobs, 1 client");
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..bench.reps {
            checkpoint(&bench.pool).await?;
            let start = Instant::now();
            for chunk in 0..n / 100 {
                let batch: Vec<Value> = (chunk * 100..chunk * 100 + 100).map(payload).collect();
                producer.enqueue_batch(&batch).await?;
            }
            ours.push(n as f64 / start.elapsed().as_secs_f64());
            checkpoint(&bench.pool).await?;
            let start = Instant::now();
            for chunk in 0..n / 100 {
                let batch: Vec<Value> = (chunk * 100..chunk * 100 + 100).map(payload).collect();
                raw::insert_batch(&bench.pool, &batch).await?;
            }
            theirs.push(n as f64 / start.elapsed().as_secs_f64());
        }
        bench.report.add(Row {
            scenario: "B enqueue, batches of 100".into(),
            unit: "jobs/s",
            ours: median(ours),
            baseline: "INSERT .. SELECT unnest",
            raw: median(theirs),
            higher_is_better: true,
            target: Some(0.9),
        });
    }
    bench.admin.delete_queue("enqueue").await?;
    raw::truncate(&bench.pool).await?;
    Ok(())
}
