//! # pgqrs
//!
//! A PostgreSQL-backed job queue and worker runtime (and, soon, durable workflow engine)
//! for Rust. It is a
//! library, not a server: point it at Postgres and get queues with `SKIP LOCKED` claims,
//! fenced leases, retries, dead letters and an archive.
//!
//! ```no_run
//! use pgqrs::{Admin, Config, Consumer, Producer};
//! use serde_json::json;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::from_dsn("postgresql://postgres@localhost/mydb")?;
//! let admin = Admin::new(&config).await?;
//! admin.install().await?;
//! admin.create_queue("tasks").await?;
//!
//! let producer = Producer::new(&config, "tasks").await?;
//! let message = producer.enqueue(&json!({"task": "send_email"})).await?;
//!
//! let consumer = Consumer::new(&config, "tasks").await?;
//! if let Some(msg) = consumer.dequeue().await? {
//!     consumer.archive(msg.id, "completed").await?;
//! }
//! # Ok(()) }
//! ```
//!
//! Typed queues bind a payload type to its queue at compile time:
//!
//! ```no_run
//! use pgqrs::{Consumer, Job, Producer};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, Job)]
//! #[pgqrs(queue = "emails")]
//! struct SendEmail {
//!     to: String,
//! }
//!
//! # async fn demo(config: pgqrs::Config) -> pgqrs::Result<()> {
//! let producer = Producer::<SendEmail>::typed(&config).await?;
//! producer.enqueue(&SendEmail { to: "a@example.com".into() }).await?;
//!
//! let consumer = Consumer::<SendEmail>::typed(&config).await?;
//! if let Some(job) = consumer.dequeue().await? {
//!     println!("sending to {}", job.payload.to);
//!     consumer.archive(job.id, "sent").await?;
//! }
//! # Ok(()) }
//! ```

mod admin;
mod config;
mod consumer;
mod db;
mod error;
mod job;
mod lease;
pub mod metrics;
mod pooler;
mod producer;
mod queue;
mod queue_name;
mod wake_gate;
mod worker;
pub mod workflow;

pub use admin::{Admin, JobInfo, JobState, RunFilter, RunInfo, StepInfo};
pub use config::{Config, DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_VISIBILITY_TIMEOUT};
pub use consumer::{Consumer, Handoff, MAX_CLAIM_BATCH};
pub use db::Db;
pub use error::{Error, Result};
pub use job::{EnqueueOptions, Enqueued, Job, JobType, Message, Nacked, Payload};
pub use lease::Lease;
pub use pooler::Pooler;
pub use producer::Producer;
pub use queue::{DEFAULT_MAX_ATTEMPTS, DeadLetter, QueueInfo, QueueOptions, QueueStats};
pub use queue_name::{MAX_QUEUE_NAME_LEN, QueueName};
pub use worker::{
    Backoff, HandlerOptions, Periodic, Worker, WorkerHandle, WorkerInfo, WorkerStats,
};

/// The token that shuts a [`Worker`] down when cancelled (from `tokio-util`).
pub use tokio_util::sync::CancellationToken;

/// `#[derive(Job)]` binds a payload type to a queue: `#[pgqrs(queue = "emails")]`.
/// See [`JobType`].
pub use pgqrs_derive::Job;

/// Marks an async fn as a durable workflow step; see [`workflow`].
pub use pgqrs_derive::pgqrs_step;
/// Marks an async fn as a durable workflow; see [`workflow`].
pub use pgqrs_derive::pgqrs_workflow;

/// The JSON-schema crate step outputs derive `JsonSchema` from.
pub use schemars;

/// Items the macros expand to. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use futures::future::BoxFuture;
    pub use serde_json;
}
