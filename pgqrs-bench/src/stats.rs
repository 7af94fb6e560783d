//! S: the queue metrics statement (`Admin::queue_metrics`, what `Admin::record_metrics`
//! publishes) on a queue 1,000,000 jobs deep, next to an exact `count(*)` of the same
//! queue (`Admin::queue_stats`). A scrape every few seconds must stay cheap at any depth.

use std::time::Instant;

use anyhow::Result;
use pgqrs::Producer;
use serde_json::Value;

use crate::report::{Row, median};
use crate::{Bench, payload};

pub(crate) async fn run(bench: &mut Bench) -> Result<()> {
    let depth = bench.size(1_000_000, 100_000);
    let queue = "stats-deep";
    eprintln!("[S] filling a queue {depth} deep");
    bench.admin.create_queue(queue).await?;
    let producer = Producer::new(&bench.config, queue).await?;
    let batch: Vec<Value> = (0..5_000).map(payload).collect();
    for take in crate::chunk_sizes(depth, batch.len()) {
        producer.enqueue_batch(&batch[..take]).await?;
    }
    // What autovacuum does on its own on a busy table: set the visibility map, so that
    // counts are index-only scans.
    sqlx::query("VACUUM ANALYZE pgqrs.jobs")
        .execute(&bench.pool)
        .await?;

    let reps = if bench.quick { 5 } else { 21 };
    let (mut ours, mut exact) = (Vec::new(), Vec::new());
    let mut last = None;
    for _ in 0..reps {
        let start = Instant::now();
        let measured = bench.admin.queue_metrics().await?;
        ours.push(start.elapsed().as_secs_f64() * 1000.0);
        last = measured.into_iter().find(|q| q.queue.as_str() == queue);
        let start = Instant::now();
        bench.admin.queue_stats(queue).await?;
        exact.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    if let Some(q) = last {
        bench.report.note(format!(
            "S: queue_metrics on {depth} jobs: available {} (estimated: {}), oldest {:?}",
            q.available, q.estimated, q.oldest_available_age
        ));
    }
    bench.report.add(Row {
        scenario: format!("queue metrics (all queues), one queue {depth} deep"),
        unit: "ms",
        ours: median(ours),
        baseline: "exact count(*) of the queue (`queue_stats`)",
        raw: median(exact),
        higher_is_better: false,
        target: None,
    });
    Ok(())
}
