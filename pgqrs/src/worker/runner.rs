//! One queue's loop inside a worker: claim in batches, run handlers, record their outcomes
//! in batches, and wind down on shutdown.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::Notify;
use tokio::task::{Id, JoinSet};
use tracing::Instrument;

use super::options::HandlerOptions;
use super::{Handled, JobHandler, Shared, Stats};
use crate::{Consumer, Error, Job, Nacked, Payload};

/// How a handler run ended.
enum Outcome {
    Succeeded,
    /// The handler settled the job itself (a workflow run finished or suspended).
    Settled,
    Failed(String),
    Panicked(String),
    /// Aborted at shutdown: retried at once, the delivery still counts.
    Interrupted,
}

/// A handler run that ended and whose outcome is not recorded yet.
struct Finished {
    id: i64,
    attempts: i32,
    outcome: Outcome,
}

/// The loop of one queue. Generic over the payload and handler; the worker sees it only as
/// a future.
pub(super) struct Runner<T: Payload, H> {
    pub(super) shared: Arc<Shared>,
    pub(super) consumer: Arc<Consumer<T>>,
    pub(super) handler: Arc<H>,
    pub(super) options: HandlerOptions,
    pub(super) wake: Arc<Notify>,
}

/// Mutable state of a running loop.
struct State<T> {
    prefetched: VecDeque<Job<T>>,
    running: JoinSet<Finished>,
    running_jobs: HashMap<Id, i64>,
    finished: Vec<Finished>,
    /// The last claim came back short: wait for a wake-up or the poll before the next one.
    idle: bool,
    /// Consecutive database errors, for backing off.
    errors: u32,
}

impl<T: Payload, H: JobHandler<T>> Runner<T, H> {
    pub(super) async fn run(self) {
        let mut state = State {
            prefetched: VecDeque::new(),
            running: JoinSet::new(),
            running_jobs: HashMap::new(),
            finished: Vec::new(),
            idle: false,
            errors: 0,
        };
        let concurrency = self.options.concurrency.max(1);
        let capacity = concurrency + self.options.prefetch;
        loop {
            while let Some(joined) = state.running.try_join_next_with_id() {
                state
                    .finished
                    .push(self.finished(&mut state.running_jobs, joined));
            }
            self.record(&mut state).await;
            while state.running.len() < concurrency
                && let Some(job) = state.prefetched.pop_front()
            {
                self.start(&mut state, job);
            }
            if self.shared.stop.is_cancelled() {
                break;
            }
            let held = state.running.len() + state.prefetched.len();
            let free = capacity.saturating_sub(held);
            let slot_idle = state.running.len() < concurrency && state.prefetched.is_empty();
            if !state.idle && free > 0 && (slot_idle || free >= capacity.div_ceil(2)) {
                self.claim(&mut state, free).await;
                continue;
            }
            let poll = self.poll_delay(state.errors);
            tokio::select! {
                biased;
                () = self.shared.stop.cancelled() => {}
                Some(joined) = state.running.join_next_with_id(), if !state.running.is_empty() => {
                    state.finished.push(self.finished(&mut state.running_jobs, joined));
                }
                () = self.wake.notified() => state.idle = false,
                () = tokio::time::sleep(poll), if state.idle => state.idle = false,
            }
        }
        self.wind_down(state).await;
    }

    fn poll_delay(&self, errors: u32) -> Duration {
        let backoff = Duration::from_millis(100).saturating_mul(2u32.saturating_pow(errors.min(6)));
        if errors == 0 {
            self.shared.poll_interval
        } else {
            backoff.min(Duration::from_secs(5))
        }
    }

    async fn claim(&self, state: &mut State<T>, n: usize) {
        let span =
            tracing::debug_span!("pgqrs.claim", queue = %self.consumer.queue().name, asked = n);
        match self.consumer.dequeue_batch(n).instrument(span).await {
            Ok(jobs) => {
                state.errors = 0;
                state.idle = jobs.len() < n;
                Stats::add(&self.shared.stats.claimed, jobs.len());
                state.prefetched.extend(jobs);
            }
            // The job is in the dead letters with the reason; the rest were handed back.
            Err(Error::Decode { id, .. }) => {
                tracing::warn!(queue = %self.consumer.queue().name, job_id = id, "undecodable job dead-lettered");
            }
            Err(err) => {
                state.errors = state.errors.saturating_add(1);
                state.idle = true;
                tracing::warn!(queue = %self.consumer.queue().name, error = %err, "claim failed; retrying");
            }
        }
    }

    fn start(&self, state: &mut State<T>, job: Job<T>) {
        let span = tracing::info_span!(
            "pgqrs.job",
            queue = %self.consumer.queue().name,
            job_id = job.id,
            attempt = job.attempts,
        );
        let (id, attempts) = (job.id, job.attempts);
        let handler = Arc::clone(&self.handler);
        let task = state.running.spawn(
            async move {
                let run = async move { handler.handle(job).await };
                let outcome = match AssertUnwindSafe(run).catch_unwind().await {
                    Ok(Handled::Succeeded) => Outcome::Succeeded,
                    Ok(Handled::Settled) => Outcome::Settled,
                    Ok(Handled::Failed(error)) => Outcome::Failed(error),
                    Err(panic) => Outcome::Panicked(panic_message(panic.as_ref())),
                };
                Finished {
                    id,
                    attempts,
                    outcome,
                }
            }
            .instrument(span),
        );
        state.running_jobs.insert(task.id(), id);
    }

    fn finished(
        &self,
        running_jobs: &mut HashMap<Id, i64>,
        joined: Result<(Id, Finished), tokio::task::JoinError>,
    ) -> Finished {
        match joined {
            Ok((task, finished)) => {
                running_jobs.remove(&task);
                finished
            }
            // Panics are caught inside the task; this is an abort at shutdown.
            Err(err) => Finished {
                id: running_jobs.remove(&err.id()).unwrap_or_default(),
                attempts: 0,
                outcome: Outcome::Interrupted,
            },
        }
    }

    /// Records finished runs in at most two round trips: archive the successes, nack the
    /// failures. On a database error the outcomes stay for the next pass.
    async fn record(&self, state: &mut State<T>) {
        if state.finished.is_empty() {
            return;
        }
        let stats = &self.shared.stats;
        let succeeded: Vec<i64> = state
            .finished
            .iter()
            .filter(|f| matches!(f.outcome, Outcome::Succeeded))
            .map(|f| f.id)
            .collect();
        let failed: Vec<(i64, Duration, Option<String>)> = state
            .finished
            .iter()
            .filter_map(|f| match &f.outcome {
                Outcome::Succeeded | Outcome::Settled => None,
                Outcome::Failed(error) | Outcome::Panicked(error) => Some((
                    f.id,
                    self.options.backoff.delay(f.attempts),
                    Some(error.clone()),
                )),
                Outcome::Interrupted => Some((
                    f.id,
                    Duration::ZERO,
                    Some("the worker stopped before the handler finished".to_owned()),
                )),
            })
            .collect();
        let settled: Vec<i64> = state
            .finished
            .iter()
            .filter(|f| matches!(f.outcome, Outcome::Settled))
            .map(|f| f.id)
            .collect();
        if !settled.is_empty() {
            self.consumer.forget_settled(&settled);
            Stats::add(&stats.succeeded, settled.len());
            state
                .finished
                .retain(|f| !matches!(f.outcome, Outcome::Settled));
        }
        if !succeeded.is_empty() {
            match self.consumer.archive_batch(&succeeded, "completed").await {
                Ok(()) => Stats::add(&stats.succeeded, succeeded.len()),
                Err(Error::LeaseLost { job_ids }) => {
                    Stats::add(&stats.succeeded, succeeded.len() - job_ids.len());
                    self.lost(&job_ids);
                }
                Err(err) => return self.record_failed(state, &err),
            }
        }
        if !failed.is_empty() {
            match self.consumer.nack_many(&failed).await {
                Ok(outcomes) => {
                    let mut lost = Vec::new();
                    for (id, nacked) in outcomes {
                        match nacked {
                            Some(Nacked::Retrying { .. }) => Stats::add(&stats.retried, 1),
                            Some(Nacked::DeadLettered) => Stats::add(&stats.dead_lettered, 1),
                            None => lost.push(id),
                        }
                    }
                    self.lost(&lost);
                }
                Err(err) => {
                    // The successes are recorded; keep only the failures for the next pass.
                    state
                        .finished
                        .retain(|f| !matches!(f.outcome, Outcome::Succeeded));
                    return self.record_failed(state, &err);
                }
            }
        }
        let panicked = state
            .finished
            .iter()
            .filter(|f| matches!(f.outcome, Outcome::Panicked(_)))
            .count();
        Stats::add(&stats.panicked, panicked);
        state.finished.clear();
        state.errors = 0;
    }

    fn record_failed(&self, state: &mut State<T>, err: &Error) {
        state.errors = state.errors.saturating_add(1);
        state.idle = true;
        tracing::warn!(queue = %self.consumer.queue().name, error = %err, "recording job outcomes failed; retrying");
    }

    fn lost(&self, job_ids: &[i64]) {
        if job_ids.is_empty() {
            return;
        }
        Stats::add(&self.shared.stats.lost, job_ids.len());
        tracing::warn!(
            queue = %self.consumer.queue().name,
            ?job_ids,
            "lease lost before the outcome was recorded: another consumer has these jobs; result not recorded"
        );
    }

    /// Stops claiming, hands back prefetched jobs, lets running handlers finish until the
    /// shutdown deadline, then aborts the rest and hands their jobs back as failed runs.
    async fn wind_down(self, mut state: State<T>) {
        let queue = self.consumer.queue().name.clone();
        let unstarted: Vec<i64> = state.prefetched.drain(..).map(|job| job.id).collect();
        if !unstarted.is_empty()
            && let Err(err) = self.consumer.release_batch(&unstarted).await
        {
            tracing::warn!(%queue, error = %err, "releasing prefetched jobs failed; their leases will expire");
        }
        let deadline = tokio::time::Instant::now() + self.shared.shutdown_timeout();
        while !state.running.is_empty() {
            tokio::select! {
                Some(joined) = state.running.join_next_with_id() => {
                    state.finished.push(self.finished(&mut state.running_jobs, joined));
                }
                () = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(%queue, running = state.running.len(), "shutdown timeout: aborting handlers");
                    state.running.abort_all();
                }
            }
        }
        for attempt in 0..5 {
            self.record(&mut state).await;
            if state.finished.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        }
        if !state.finished.is_empty() {
            tracing::error!(%queue, jobs = state.finished.len(), "could not record outcomes at shutdown; the leases will expire and the jobs run again");
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    format!("handler panicked: {detail}")
}
