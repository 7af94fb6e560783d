//! Observability: the `metrics` counters, histograms and gauges, and the `tracing` spans
//! and events of claims, jobs, workflow runs and steps.
//!
//! Each test installs its recorder and subscriber for its own thread only
//! (`metrics::set_default_local_recorder`, `tracing::subscriber::set_default`): a
//! `#[sqlx::test]` runs on a current-thread runtime, so every task of the worker sees them,
//! and tests running in parallel in one process do not.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use pgqrs::workflow::{Workflow, WorkflowFn};
use pgqrs::{
    Admin, Backoff, HandlerOptions, Job, Producer, QueueOptions, Worker, pgqrs_step, pgqrs_workflow,
};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::Registry;

use crate::common::wait_until;

#[derive(Debug, Clone, Serialize, Deserialize, Job)]
#[pgqrs(queue = "observed")]
struct Observed {
    n: u32,
}

/// A metric's value, accumulated over snapshots (a snapshot of the debugging recorder
/// resets counters and histograms).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Value {
    Counter(u64),
    Gauge(f64),
    /// The number of samples.
    Histogram(usize),
}

type Key = (String, Vec<(String, String)>);

/// Everything recorded so far.
struct Recorded {
    snapshotter: Snapshotter,
    values: Vec<(Key, Value)>,
}

impl Recorded {
    fn new(recorder: &DebuggingRecorder) -> Self {
        Recorded {
            snapshotter: recorder.snapshotter(),
            values: Vec::new(),
        }
    }

    fn refresh(&mut self) {
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let key = key.key();
            let mut labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            let key = (key.name().to_owned(), labels);
            let value = match value {
                DebugValue::Counter(n) => Value::Counter(n),
                DebugValue::Gauge(v) => Value::Gauge(v.0),
                DebugValue::Histogram(values) => Value::Histogram(values.len()),
            };
            match self.values.iter_mut().find(|(k, _)| *k == key) {
                None => self.values.push((key, value)),
                Some((_, old)) => {
                    *old = match (*old, value) {
                        (Value::Counter(a), Value::Counter(b)) => Value::Counter(a + b),
                        (Value::Histogram(a), Value::Histogram(b)) => Value::Histogram(a + b),
                        (_, new) => new,
                    }
                }
            }
        }
    }

    /// The value of metric `name` whose labels include all of `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<Value> {
        self.values
            .iter()
            .find(|((n, l), _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, value)| *value)
    }

    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        match self.get(name, labels) {
            Some(Value::Counter(n)) => n,
            None => 0,
            other => panic!("{name} is not a counter: {other:?}"),
        }
    }

    fn samples(&self, name: &str, labels: &[(&str, &str)]) -> usize {
        match self.get(name, labels) {
            Some(Value::Histogram(n)) => n,
            None => 0,
            other => panic!("{name} is not a histogram: {other:?}"),
        }
    }

    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        match self.get(name, labels) {
            Some(Value::Gauge(v)) => v,
            other => panic!("{name} is not a gauge: {other:?}"),
        }
    }
}

const JOBS: u32 = 25;
const POISON: u32 = 7;

#[sqlx::test(migrations = "../migrations")]
async fn counters_and_histograms_count_every_job(pool: PgPool) -> anyhow::Result<()> {
    let recorder = DebuggingRecorder::new();
    let mut recorded = Recorded::new(&recorder);
    let _recorder = metrics::set_default_local_recorder(&recorder);

    let pool = crate::common::via_pooler(pool).await;
    let config = crate::common::config(&pool);
    let admin = Admin::new(&config).await?;
    admin
        .create_queue_with("observed", QueueOptions::builder().max_attempts(1).build())
        .await?;
    let producer = Producer::<Observed>::typed(&config).await?;
    let jobs: Vec<Observed> = (0..JOBS).map(|n| Observed { n }).collect();
    producer.enqueue_batch(&jobs[..10]).await?;
    for job in &jobs[10..] {
        producer.enqueue(job).await?;
    }

    // The gauges before any work: every job available, the oldest waiting a little.
    let measured = admin.record_metrics().await?;
    let observed = measured
        .iter()
        .find(|q| q.queue.as_str() == "observed")
        .expect("the queue is measured");
    assert_eq!(
        (
            observed.available,
            observed.scheduled,
            observed.leased,
            observed.dead
        ),
        (i64::from(JOBS), 0, 0, 0)
    );
    assert!(!observed.estimated);
    assert!(observed.oldest_available_age.is_some());
    recorded.refresh();
    let depth = |recorded: &Recorded, state: &str| {
        recorded.gauge(
            "pgqrs_queue_depth",
            &[("queue", "observed"), ("state", state)],
        )
    };
    assert_eq!(depth(&recorded, "available"), f64::from(JOBS));
    assert_eq!(depth(&recorded, "leased"), 0.0);
    let queue = [("queue", "observed")];
    assert!(recorded.gauge("pgqrs_queue_oldest_job_age_seconds", &queue) >= 0.0);

    let worker = Worker::builder()
        .config(config.clone())
        .poll_interval(Duration::from_millis(50))
        .build()
        .handle_with(
            HandlerOptions::builder()
                .concurrency(4)
                .backoff(Backoff::builder().base(Duration::from_millis(10)).build())
                .build(),
            |job: Job<Observed>| async move {
                if job.payload.n == POISON {
                    Err("poison".to_owned())
                } else {
                    Ok(())
                }
            },
        )
        .start()
        .await?;
    // Settled, not just claimed: a claim moves its jobs into the archive at once, so counting
    // `pgqrs.archive` would stop the worker with a job still prefetched, handed back unrun.
    wait_until(Duration::from_secs(20), || async {
        let done: (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM pgqrs.history), (SELECT count(*) FROM pgqrs.dead_letters)",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        done == (i64::from(JOBS - 1), 1)
    })
    .await;
    worker.shutdown(Duration::from_secs(10)).await?;

    recorded.refresh();
    let count = |name: &str| recorded.counter(name, &queue);
    assert_eq!(count("pgqrs_jobs_enqueued_total"), u64::from(JOBS));
    assert_eq!(count("pgqrs_jobs_claimed_total"), u64::from(JOBS));
    assert_eq!(count("pgqrs_jobs_completed_total"), u64::from(JOBS - 1));
    assert_eq!(count("pgqrs_jobs_failed_total"), 1);
    assert_eq!(count("pgqrs_jobs_dead_lettered_total"), 1);
    assert_eq!(count("pgqrs_jobs_retried_total"), 0);
    assert_eq!(
        recorded.samples("pgqrs_handler_duration_seconds", &queue),
        JOBS as usize
    );
    assert!(recorded.samples("pgqrs_claim_duration_seconds", &queue) >= 1);

    // The gauges after the work: nothing waiting, one dead letter, no oldest job.
    admin.record_metrics().await?;
    recorded.refresh();
    assert_eq!(depth(&recorded, "available"), 0.0);
    assert_eq!(depth(&recorded, "dead"), 1.0);
    assert_eq!(
        recorded.gauge("pgqrs_queue_oldest_job_age_seconds", &queue),
        0.0
    );
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn queue_metrics_are_exact_below_the_bound_and_estimated_above(
    pool: PgPool,
) -> anyhow::Result<()> {
    let pool = crate::common::via_pooler(pool).await;
    let (config, admin) = crate::common::setup(pool.clone(), &["deep", "shallow"]).await;
    let deep = Producer::new(&config, "deep").await?;
    let payloads: Vec<serde_json::Value> =
        (0..3000).map(|n| serde_json::json!({ "n": n })).collect();
    deep.enqueue_batch(&payloads).await?;
    let delayed = pgqrs::EnqueueOptions::builder()
        .delay(Duration::from_secs(3600))
        .build();
    deep.enqueue_batch_with(&payloads[..40], &delayed).await?;
    let urgent = pgqrs::EnqueueOptions::builder().priority(5).build();
    deep.enqueue_batch_with(&payloads[..10], &urgent).await?;
    Producer::new(&config, "shallow")
        .await?
        .enqueue(&serde_json::json!({}))
        .await?;
    sqlx::query("ANALYZE pgqrs.jobs").execute(&pool).await?;

    let exact = admin.queue_metrics().await?;
    let by_name: HashMap<&str, &pgqrs::metrics::QueueMetrics> =
        exact.iter().map(|q| (q.queue.as_str(), q)).collect();
    assert_eq!(by_name["deep"].available, 3010);
    assert_eq!(by_name["deep"].scheduled, 40);
    assert_eq!(by_name["shallow"].available, 1);
    assert!(!by_name["deep"].estimated);

    // With a bound of 1,000, the deep queue's available count is an estimate (a sample of
    // the whole small table: close to exact), never below the bound; the rest stays exact.
    let bounded = admin.queue_metrics_exact_up_to(1000).await?;
    let deep = bounded.iter().find(|q| q.queue.as_str() == "deep").unwrap();
    assert!(deep.estimated);
    assert!(deep.available >= 1000, "{deep:?}");
    assert!((2000..=4500).contains(&deep.available), "{deep:?}");
    assert_eq!(deep.scheduled, 40);
    let shallow = bounded
        .iter()
        .find(|q| q.queue.as_str() == "shallow")
        .unwrap();
    assert_eq!((shallow.available, shallow.estimated), (1, false));
    Ok(())
}

// ---- tracing ----

/// A span or event as the capture layer saw it: its name (the message for events), the
/// name of its span (events), and its fields.
#[derive(Debug, Clone, Default)]
struct Seen {
    name: String,
    span: Option<String>,
    fields: HashMap<String, String>,
}

#[derive(Clone, Default)]
struct Capture {
    spans: Arc<Mutex<HashMap<u64, Seen>>>,
    closed: Arc<Mutex<Vec<Seen>>>,
    events: Arc<Mutex<Vec<Seen>>>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S> tracing_subscriber::Layer<S> for Capture
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _ctx: Context<'_, S>) {
        let mut seen = Seen {
            name: attrs.metadata().name().to_owned(),
            ..Seen::default()
        };
        attrs.record(&mut Fields(&mut seen.fields));
        self.spans.lock().unwrap().insert(id.into_u64(), seen);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        if let Some(seen) = self.spans.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut seen.fields));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut seen = Seen::default();
        event.record(&mut Fields(&mut seen.fields));
        seen.name = seen.fields.get("message").cloned().unwrap_or_default();
        seen.span = ctx.event_span(event).map(|span| span.name().to_owned());
        self.events.lock().unwrap().push(seen);
    }

    fn on_close(&self, id: Id, _ctx: Context<'_, S>) {
        if let Some(seen) = self.spans.lock().unwrap().remove(&id.into_u64()) {
            self.closed.lock().unwrap().push(seen);
        }
    }
}

impl Capture {
    fn spans(&self, name: &str) -> Vec<Seen> {
        let closed = self.closed.lock().unwrap();
        let open = self.spans.lock().unwrap();
        closed
            .iter()
            .chain(open.values())
            .filter(|s| s.name == name)
            .cloned()
            .collect()
    }

    fn events(&self, outcome: &str) -> Vec<Seen> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.fields.get("outcome").map(String::as_str) == Some(outcome))
            .cloned()
            .collect()
    }
}

#[pgqrs_step]
async fn double(ctx: &Workflow, n: i64) -> anyhow::Result<i64> {
    Ok(n * 2)
}

#[pgqrs_step]
async fn refuse(ctx: &Workflow, n: i64) -> anyhow::Result<i64> {
    anyhow::bail!("refused {n}")
}

#[pgqrs_workflow]
async fn traced(ctx: &Workflow, n: i64) -> anyhow::Result<i64> {
    let a = double(ctx, n).await?;
    let b = double(ctx, a).await?;
    if b > 100 {
        return refuse(ctx, b).await;
    }
    Ok(b)
}

#[sqlx::test(migrations = "../migrations")]
async fn spans_and_events_carry_ids_outcomes_and_durations(pool: PgPool) -> anyhow::Result<()> {
    let capture = Capture::default();
    let _subscriber = tracing::subscriber::set_default(Registry::default().with(capture.clone()));
    let recorder = DebuggingRecorder::new();
    let mut recorded = Recorded::new(&recorder);
    let _recorder = metrics::set_default_local_recorder(&recorder);

    let pool = crate::common::via_pooler(pool).await;
    let (config, _admin) = crate::common::setup(pool.clone(), &[]).await;
    let admin = Admin::new(&config).await?;
    admin
        .create_queue_with("observed", QueueOptions::builder().max_attempts(1).build())
        .await?;
    let producer = Producer::<Observed>::typed(&config).await?;
    producer.enqueue(&Observed { n: 1 }).await?;
    producer.enqueue(&Observed { n: POISON }).await?;
    let ok = <traced as WorkflowFn>::enqueue(&config, &5).await?;
    let failing = <traced as WorkflowFn>::enqueue(&config, &50).await?;

    let worker = Worker::builder()
        .config(config.clone())
        .poll_interval(Duration::from_millis(50))
        .build()
        .handle(|job: Job<Observed>| async move {
            if job.payload.n == POISON {
                Err("poison".to_owned())
            } else {
                Ok(())
            }
        })
        .workflow::<traced>()
        .start()
        .await?;
    assert_eq!(ok.result::<i64>().await?, 20);
    assert!(failing.result::<i64>().await.is_err());
    wait_until(Duration::from_secs(20), || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pgqrs.dead_letters")
            .fetch_one(&pool)
            .await
            .unwrap()
            == 1
    })
    .await;
    worker.shutdown(Duration::from_secs(10)).await?;

    // Claims: queue, batch size, claimed count, duration.
    let claims = capture.spans("pgqrs.claim");
    assert!(
        claims.iter().any(
            |c| c.fields.get("queue").map(String::as_str) == Some("observed")
                && c.fields.contains_key("batch_size")
                && c.fields.get("claimed").is_some_and(|n| n != "0")
                && c.fields.contains_key("elapsed_ms")
        ),
        "{claims:?}"
    );

    // Jobs: one span per delivery with queue, id and attempt; the poison one ends in the
    // dead letters, with an event in its span.
    let jobs: Vec<Seen> = capture
        .spans("pgqrs.job")
        .into_iter()
        .filter(|j| j.fields.get("queue").map(String::as_str) == Some("observed"))
        .collect();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert!(jobs.iter().all(|j| j.fields.contains_key("job_id")
        && j.fields.get("attempt").map(String::as_str) == Some("1")));
    let dead = capture.events("dead_letter");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].span.as_deref(), Some("pgqrs.job"));
    assert!(dead[0].fields.contains_key("elapsed_ms"));
    let failed = capture.events("failed");
    assert!(
        failed
            .iter()
            .any(|e| e.span.as_deref() == Some("pgqrs.job") && e.fields.contains_key("elapsed_ms"))
    );

    // Runs: workflow, run id, attempt, outcome, duration.
    let runs = capture.spans("pgqrs.run");
    let run = |id: i64| {
        runs.iter()
            .find(|r| r.fields.get("run_id") == Some(&id.to_string()))
            .unwrap_or_else(|| panic!("no span of run {id}: {runs:?}"))
    };
    for (handle, outcome) in [(&ok, "succeeded"), (&failing, "failed")] {
        let span = run(handle.run_id());
        assert_eq!(span.fields["workflow"], "traced");
        assert_eq!(span.fields["attempt"], "1");
        assert_eq!(span.fields["outcome"], outcome);
        assert!(span.fields.contains_key("elapsed_ms"));
    }

    // Steps: run id, name, sequence, cached or not, outcome, duration.
    let steps = capture.spans("pgqrs.step");
    let of_ok: Vec<&Seen> = steps
        .iter()
        .filter(|s| s.fields.get("run_id") == Some(&ok.run_id().to_string()))
        .collect();
    assert_eq!(of_ok.len(), 2, "{steps:?}");
    for (seq, step) in of_ok.iter().enumerate() {
        assert_eq!(step.fields["step"], "double");
        assert_eq!(step.fields["seq"], seq.to_string());
        assert_eq!(step.fields["cached"], "false");
        assert_eq!(step.fields["outcome"], "completed");
        assert!(step.fields.contains_key("elapsed_ms"));
    }
    assert!(steps.iter().any(
        |s| s.fields.get("step").map(String::as_str) == Some("refuse")
            && s.fields.get("outcome").map(String::as_str) == Some("failed")
    ));

    // The same runs and steps, counted.
    recorded.refresh();
    let runs_total = |outcome: &str| {
        recorded.counter(
            "pgqrs_workflow_runs_total",
            &[("workflow", "traced"), ("outcome", outcome)],
        )
    };
    assert_eq!((runs_total("succeeded"), runs_total("failed")), (1, 1));
    let steps_total = |step: &str, outcome: &str| {
        recorded.counter(
            "pgqrs_workflow_steps_total",
            &[("workflow", "traced"), ("step", step), ("outcome", outcome)],
        )
    };
    assert_eq!(steps_total("double", "completed"), 4);
    assert_eq!(steps_total("refuse", "failed"), 1);
    assert_eq!(
        recorded.samples("pgqrs_step_duration_seconds", &[("step", "double")]),
        4
    );
    assert_eq!(
        recorded.counter("pgqrs_jobs_enqueued_total", &[("queue", "wf-traced")]),
        2
    );
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn a_resumed_run_counts_its_recorded_steps_as_replayed(pool: PgPool) -> anyhow::Result<()> {
    let capture = Capture::default();
    let _subscriber = tracing::subscriber::set_default(Registry::default().with(capture.clone()));
    let recorder = DebuggingRecorder::new();
    let mut recorded = Recorded::new(&recorder);
    let _recorder = metrics::set_default_local_recorder(&recorder);

    let pool = crate::common::via_pooler(pool).await;
    let config = crate::common::config(&pool);
    // Above 100 the run fails at its third step, after recording the first two.
    let ctx = <traced as WorkflowFn>::create(&config, &30).await?;
    assert!(traced(&ctx, 30).await.is_err());
    let run_id = ctx.run_id();
    drop(ctx);
    ctx_retry(&config, run_id).await?;
    let ctx = Workflow::take_over(&config, run_id).await?;
    assert!(traced(&ctx, 30).await.is_err());

    let replayed: Vec<Seen> = capture
        .spans("pgqrs.step")
        .into_iter()
        .filter(|s| s.fields.get("cached").map(String::as_str) == Some("true"))
        .collect();
    assert_eq!(replayed.len(), 2, "{replayed:?}");
    assert!(replayed.iter().all(|s| s.fields["outcome"] == "replayed"));
    recorded.refresh();
    let steps = |outcome: &str| {
        recorded.counter(
            "pgqrs_workflow_steps_total",
            &[("step", "double"), ("outcome", outcome)],
        )
    };
    assert_eq!((steps("completed"), steps("replayed")), (2, 2));
    Ok(())
}

/// Puts a failed run back to pending, for another execution.
async fn ctx_retry(config: &pgqrs::Config, run_id: i64) -> anyhow::Result<()> {
    let handle = pgqrs::workflow::RunHandle::new(config, run_id).await?;
    let pgqrs::workflow::RunState::Failed(run) = handle.state().await? else {
        panic!("run {run_id} is not failed");
    };
    run.retry().await?;
    Ok(())
}
