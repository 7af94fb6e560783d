//! Registering what a worker runs: typed handlers, untyped handlers, workflows and
//! periodic schedules.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::db::Db;
use futures::future::BoxFuture;
use tokio::sync::Notify;

use super::runner::Runner;
use super::{HandlerOptions, Periodic, Registration, StartQueue, StartedQueue, Worker};
use crate::db;
use crate::workflow::{WorkflowFn, WorkflowHandler};
use crate::{Consumer, Job, JobType, Message, Payload, Result};

/// How a handler ended, as the queue loop records it.
pub(crate) enum Handled {
    /// Archive the job.
    Succeeded,
    /// Retry the job after the backoff (or dead-letter it), recording this error.
    Failed(String),
    /// The handler settled the job itself; just forget the lease.
    Settled,
}

/// Runs one job. User handlers are adapted by [`FnHandler`]; workflow runs have their own.
pub(crate) trait JobHandler<T>: Send + Sync + 'static {
    fn handle(&self, job: Job<T>) -> BoxFuture<'static, Handled>;
}

/// A user's `async fn(Job<T>) -> Result<(), E>` as a [`JobHandler`].
pub(crate) struct FnHandler<F>(F);

impl<T, F, Fut, E> JobHandler<T> for FnHandler<F>
where
    T: Payload,
    F: Fn(Job<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
    E: Display + Send + 'static,
{
    fn handle(&self, job: Job<T>) -> BoxFuture<'static, Handled> {
        let run = (self.0)(job);
        Box::pin(async move {
            match run.await {
                Ok(()) => Handled::Succeeded,
                Err(err) => Handled::Failed(err.to_string()),
            }
        })
    }
}

impl Worker {
    /// Registers `handler` for `T`'s queue with default [`HandlerOptions`].
    ///
    /// ```no_run
    /// # #[derive(serde::Serialize, serde::Deserialize, pgqrs::Job)]
    /// # #[pgqrs(queue = "emails")]
    /// # struct SendEmail { to: String }
    /// # async fn demo(config: pgqrs::Config) -> pgqrs::Result<()> {
    /// let worker = pgqrs::Worker::builder().config(config).build()
    ///     .handle(|job: pgqrs::Job<SendEmail>| async move {
    ///         println!("to {}", job.payload.to);
    ///         Ok::<(), String>(())
    ///     });
    /// # Ok(()) }
    /// ```
    pub fn handle<T, F, Fut, E>(self, handler: F) -> Self
    where
        T: JobType,
        F: Fn(Job<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: Display + Send + 'static,
    {
        self.handle_with(HandlerOptions::default(), handler)
    }

    /// Registers `handler` for `T`'s queue with `options`.
    ///
    /// ```no_run
    /// # #[derive(serde::Serialize, serde::Deserialize, pgqrs::Job)]
    /// # #[pgqrs(queue = "emails")]
    /// # struct SendEmail { to: String }
    /// # async fn send(job: pgqrs::Job<SendEmail>) -> Result<(), String> { Ok(()) }
    /// # async fn demo(config: pgqrs::Config) -> pgqrs::Result<()> {
    /// let options = pgqrs::HandlerOptions::builder().concurrency(32).build();
    /// let worker = pgqrs::Worker::builder().config(config).build().handle_with(options, send);
    /// # Ok(()) }
    /// ```
    pub fn handle_with<T, F, Fut, E>(self, options: HandlerOptions, handler: F) -> Self
    where
        T: JobType,
        F: Fn(Job<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: Display + Send + 'static,
    {
        self.register::<T, F, Fut, E>(T::QUEUE, options, handler)
    }

    /// Registers an untyped handler (payload `serde_json::Value`) for the queue `queue`.
    ///
    /// ```no_run
    /// # async fn demo(config: pgqrs::Config) -> pgqrs::Result<()> {
    /// let worker = pgqrs::Worker::builder().config(config).build()
    ///     .handle_queue("tasks", Default::default(), |msg: pgqrs::Message| async move {
    ///         println!("{}", msg.payload);
    ///         Ok::<(), String>(())
    ///     });
    /// # Ok(()) }
    /// ```
    pub fn handle_queue<F, Fut, E>(self, queue: &str, options: HandlerOptions, handler: F) -> Self
    where
        F: Fn(Message) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: Display + Send + 'static,
    {
        self.register::<serde_json::Value, F, Fut, E>(queue, options, handler)
    }

    /// Adds a periodic schedule: this worker (with any others running it) enqueues its job
    /// once per tick.
    ///
    /// ```no_run
    /// # async fn demo(config: pgqrs::Config) -> pgqrs::Result<()> {
    /// let nightly = pgqrs::Periodic::new("nightly-report", "0 3 * * *", "reports", &serde_json::json!({}))?;
    /// let worker = pgqrs::Worker::builder().config(config).build().periodic(nightly);
    /// # Ok(()) }
    /// ```
    pub fn periodic(mut self, schedule: Periodic) -> Self {
        self.periodic.push(schedule);
        self
    }

    fn register<T, F, Fut, E>(self, queue: &str, options: HandlerOptions, handler: F) -> Self
    where
        T: Payload,
        F: Fn(Job<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: Display + Send + 'static,
    {
        let handler = Arc::new(FnHandler(handler));
        self.register_handler(queue.to_owned(), false, options, move |_pool, _lease| {
            Ok(handler)
        })
    }

    /// Runs the workflow `W`: this worker executes its pending runs, resumes runs whose
    /// executor died, and wakes sleeping and waiting runs when their time or signal comes.
    ///
    /// ```no_run
    /// use pgqrs::workflow::Workflow;
    ///
    /// #[pgqrs::pgqrs_workflow]
    /// async fn nightly(ctx: &Workflow, day: u32) -> Result<u32, anyhow::Error> {
    ///     Ok(day)
    /// }
    ///
    /// # async fn demo(config: pgqrs::Config) -> pgqrs::Result<()> {
    /// let worker = pgqrs::Worker::builder().config(config).build()
    ///     .workflow::<nightly>()
    ///     .start()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn workflow<W: WorkflowFn>(self) -> Self {
        self.workflow_with::<W>(HandlerOptions::default())
    }

    /// Runs the workflow `W` with `options` (concurrency counts runs).
    ///
    /// ```no_run
    /// # #[pgqrs::pgqrs_workflow]
    /// # async fn nightly(ctx: &pgqrs::workflow::Workflow, day: u32) -> Result<u32, anyhow::Error> { Ok(day) }
    /// # async fn demo(config: pgqrs::Config) -> pgqrs::Result<()> {
    /// let options = pgqrs::HandlerOptions::builder().concurrency(50).build();
    /// let worker = pgqrs::Worker::builder().config(config).build().workflow_with::<nightly>(options);
    /// # Ok(()) }
    /// ```
    pub fn workflow_with<W: WorkflowFn>(self, options: HandlerOptions) -> Self {
        let queue = match crate::workflow::queue_name(W::NAME) {
            Ok(queue) => queue,
            // `start` reports the bad name.
            Err(_) => W::NAME.to_owned(),
        };
        self.register_handler(queue, true, options, |pool, lease| {
            Ok(Arc::new(WorkflowHandler::<W>::new(pool, lease)))
        })
    }

    /// Registers a loop over `queue` running the handler `make` builds; a workflow's queue
    /// is created if missing.
    fn register_handler<T, H, M>(
        mut self,
        queue: String,
        workflow_queue: bool,
        options: HandlerOptions,
        make: M,
    ) -> Self
    where
        T: Payload,
        H: JobHandler<T>,
        M: FnOnce(Db, Duration) -> Result<Arc<H>> + Send + 'static,
    {
        let name = queue.clone();
        let start: StartQueue = Box::new(move |shared, config, worker_id, lease| {
            Box::pin(async move {
                let pool = config.db().await?;
                if workflow_queue {
                    db::queue::queue_insert(&pool, &name, db::run::WORKFLOW_QUEUE_MAX_ATTEMPTS)
                        .await?;
                }
                let handler = make(pool, lease)?;
                let consumer = Consumer::<T>::for_worker(&config, &name, worker_id, lease).await?;
                let consumer = Arc::new(consumer);
                let wake = Arc::new(Notify::new());
                let runner = Runner {
                    shared,
                    consumer: Arc::clone(&consumer),
                    handler,
                    options,
                    wake: Arc::clone(&wake),
                };
                Ok(StartedQueue {
                    queue_id: consumer.queue().id,
                    holder: consumer,
                    wake,
                    run: Box::pin(runner.run()),
                })
            })
        });
        self.queues.push(Registration { queue, start });
        self
    }
}
