//! Operator views and actions: single jobs wherever they are, workflow runs and steps.

use std::time::Duration;

use pgqrs::workflow::{RunStatus, Workflow};
use pgqrs::{Admin, Consumer, EnqueueOptions, Error, JobState, Producer, RunFilter};
use serde_json::json;
use sqlx::PgPool;

use crate::common::setup;

#[sqlx::test(migrations = "../migrations")]
async fn jobs_are_found_retried_and_cancelled_wherever_they_are(pool: PgPool) {
    let (config, admin) = setup(pool, &["tasks"]).await;
    let producer = Producer::new(&config, "tasks").await.unwrap();
    let consumer = Consumer::new(&config, "tasks").await.unwrap();
    let dead = producer.enqueue(&json!({"n": 1})).await.unwrap().id;
    let leased = producer.enqueue(&json!({"n": 2})).await.unwrap().id;
    let later = EnqueueOptions::builder()
        .delay(Duration::from_secs(3600))
        .build();
    let delayed = producer
        .enqueue_with(&json!({"n": 3}), &later)
        .await
        .unwrap()
        .id;
    assert_eq!(consumer.dequeue().await.unwrap().unwrap().id, dead);
    consumer.dead_letter(dead, "boom").await.unwrap();
    assert_eq!(consumer.dequeue().await.unwrap().unwrap().id, leased);

    let job = admin.job(dead).await.unwrap();
    assert_eq!(
        (job.state, job.last_error.as_deref()),
        (JobState::Dead, Some("boom"))
    );
    assert_eq!(job.queue.as_str(), "tasks");
    assert_eq!(job.payload, json!({"n": 1}));
    let job = admin.job(leased).await.unwrap();
    assert_eq!(job.state, JobState::Leased);
    assert!(job.lease_expires_at.is_some());
    assert_eq!(admin.job(delayed).await.unwrap().state, JobState::Delayed);
    assert!(matches!(
        admin.job(999).await,
        Err(Error::JobNotFound { id: 999 })
    ));

    // A leased job is its holder's.
    assert!(matches!(
        admin.cancel_job(leased).await,
        Err(Error::JobLeased { .. })
    ));
    assert!(matches!(
        admin.retry_job(leased).await,
        Err(Error::JobLeased { .. })
    ));

    // Retry: dead → ready (attempts reset), delayed → ready.
    assert_eq!(admin.retry_job(dead).await.unwrap(), JobState::Dead);
    let job = admin.job(dead).await.unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Ready, 0));
    assert_eq!(admin.retry_job(delayed).await.unwrap(), JobState::Delayed);
    assert_eq!(admin.job(delayed).await.unwrap().state, JobState::Ready);

    // Cancel: ready → archived as cancelled, and no consumer gets it; again: no change.
    assert_eq!(admin.cancel_job(dead).await.unwrap(), JobState::Ready);
    let job = admin.job(dead).await.unwrap();
    assert_eq!(
        (job.state, job.outcome.as_deref()),
        (JobState::Archived, Some("cancelled"))
    );
    assert_eq!(admin.cancel_job(dead).await.unwrap(), JobState::Archived);
    let next = consumer.dequeue().await.unwrap().unwrap();
    assert_eq!(next.id, delayed);
    assert!(consumer.dequeue().await.unwrap().is_none());

    // An archived job can be retried: back in its queue under its id.
    assert_eq!(admin.retry_job(dead).await.unwrap(), JobState::Archived);
    assert_eq!(consumer.dequeue().await.unwrap().unwrap().id, dead);
}

#[sqlx::test(migrations = "../migrations")]
async fn runs_are_listed_and_shown(pool: PgPool) {
    let (_config, admin) = setup(pool.clone(), &[]).await;
    let first = Workflow::enqueue(&pool, "report", &json!({"day": 1}))
        .await
        .unwrap();
    let second = Workflow::enqueue(&pool, "digest", &json!({"day": 2}))
        .await
        .unwrap();
    first.cancel().await.unwrap();

    let all = admin.list_runs(&RunFilter::default()).await.unwrap();
    let ids: Vec<i64> = all.iter().map(|r| r.id).collect();
    assert_eq!(ids, [second.run_id(), first.run_id()], "most recent first");
    let cancelled = RunFilter::builder().status(RunStatus::Cancelled).build();
    let runs = admin.list_runs(&cancelled).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].id, first.run_id());
    let digest = RunFilter::builder().workflow("digest").limit(5).build();
    assert_eq!(
        admin.list_runs(&digest).await.unwrap()[0].id,
        second.run_id()
    );
    let none = RunFilter::builder().limit(0).build();
    assert!(admin.list_runs(&none).await.unwrap().is_empty());

    let run = admin.run(second.run_id()).await.unwrap();
    assert_eq!(run.workflow, "digest");
    assert_eq!(run.status, RunStatus::Pending);
    assert_eq!(run.input, json!({"day": 2}));
    assert!(admin.run_steps(second.run_id()).await.unwrap().is_empty());
    assert!(matches!(
        admin.run(999).await,
        Err(Error::RunNotFound { run_id: 999 })
    ));

    // The job driving a run is left to the run's own moves.
    let job_id: i64 = sqlx::query_scalar("SELECT job_id FROM pgqrs.runs WHERE id = $1")
        .bind(second.run_id())
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(matches!(
        admin.cancel_job(job_id).await,
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        admin.retry_job(job_id).await,
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(admin.job(job_id).await.unwrap().state, JobState::Ready);
}

#[sqlx::test(migrations = false)]
async fn schema_version_tells_before_and_after_install(pool: PgPool) {
    let admin = Admin::new(&pgqrs::Config::from_pool(pool)).await.unwrap();
    assert_eq!(admin.schema_version().await.unwrap(), None);
    admin.install().await.unwrap();
    assert_eq!(
        admin.schema_version().await.unwrap(),
        Some(Admin::expected_schema_version())
    );
}
