//! The claim: one statement that archives the acked jobs and claims the next batch, under
//! the queue's claim lock when it has a global cap; traced and measured.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tracing::Instrument;

use super::{Consumer, Handoff, Undecodable};
use crate::db::{self, job as jobs, job::Ack, job::ClaimBatch};
use crate::metrics::{self, QueueInstruments};
use crate::{Error, Job, Lease, Payload, Result};

impl<T: Payload> Consumer<T> {
    /// The metric handles of this consumer's queue.
    pub(crate) fn instruments(&self) -> &QueueInstruments {
        &self.metrics
    }

    pub(super) async fn claim_after(
        &self,
        n: usize,
        lease: Duration,
        done: &[i64],
        outcome: &str,
    ) -> Result<Handoff<T>> {
        let limit = i64::try_from(n.min(super::MAX_CLAIM_BATCH)).unwrap_or(i64::MAX);
        let (acked, tokens) = self.leases.held(done);
        let ack = Ack {
            ids: &acked,
            tokens: &tokens,
            outcome,
        };
        let span = tracing::debug_span!(
            "pgqrs.claim",
            queue = %self.queue.name,
            batch_size = n,
            acked = acked.len(),
            claimed = tracing::field::Empty,
            elapsed_ms = tracing::field::Empty,
        );
        let started = Instant::now();
        let batch = self
            .claim(limit, db::secs(lease), ack)
            .instrument(span.clone())
            .await?;
        let elapsed = started.elapsed();
        self.metrics.claim_duration.record(elapsed.as_secs_f64());
        metrics::add(&self.metrics.claimed, batch.jobs.len());
        metrics::add(&self.metrics.completed, batch.archived.len());
        if !span.is_disabled() {
            span.record("claimed", batch.jobs.len());
            span.record("elapsed_ms", metrics::millis(elapsed));
            tracing::debug!(
                parent: &span,
                queue = %self.queue.name,
                claimed = batch.jobs.len(),
                archived = batch.archived.len(),
                elapsed_ms = metrics::millis(elapsed),
                "claimed"
            );
        }
        let archived: HashSet<i64> = batch.archived.iter().copied().collect();
        self.leases.forget(&acked, &archived);
        let lost: Vec<i64> = done
            .iter()
            .copied()
            .filter(|id| !archived.contains(id))
            .collect();
        let rows = batch.jobs;
        let mut claimed = Vec::with_capacity(rows.len());
        let mut undecodable = Vec::new();
        for row in rows {
            match serde_json::from_str::<T>(&row.payload) {
                Ok(payload) => claimed.push((
                    row.lease_token,
                    Job {
                        id: row.id,
                        payload,
                        attempts: row.attempts,
                        priority: row.priority,
                        enqueued_at: row.enqueued_at,
                        lease_expires_at: row.lease_expires_at,
                        lease: Lease::new(row.id, row.lease_token),
                    },
                )),
                Err(source) => undecodable.push((row.id, row.lease_token, source)),
            }
        }
        if !undecodable.is_empty() {
            return Err(self.reject_undecodable(undecodable, claimed).await?);
        }
        for (_, job) in &claimed {
            self.leases.hold(job.id, job.lease.clone());
        }
        Ok(Handoff {
            jobs: claimed.into_iter().map(|(_, job)| job).collect(),
            lost,
        })
    }

    /// One claim statement; on a capped queue, under the queue's claim lock so that the cap
    /// holds across all consumers.
    async fn claim(&self, limit: i64, lease_secs: f64, ack: Ack<'_>) -> Result<ClaimBatch> {
        // Two claims can deadlock: a scan that meets a job another consumer claimed a
        // moment ago locks the job's newest version before it rechecks the WHERE and keeps
        // that lock until commit, so each claim's ack (run after its scans) can wait on the
        // other. Postgres breaks it after `deadlock_timeout`. The loser's statement was
        // rolled back whole, ack included, so running it again is safe. (Acking before the
        // scans, or acking only what can be locked at once, removed the deadlocks but cost
        // more throughput than they lose; see issue 6.)
        let mut attempt = 0;
        loop {
            match self.claim_once(limit, lease_secs, ack).await {
                Err(Error::Database(err)) if db::is_deadlock(&err) && attempt < 3 => {
                    attempt += 1;
                    tracing::debug!(queue = %self.queue.name, attempt, "claim deadlocked; retrying");
                }
                result => return result,
            }
        }
    }

    async fn claim_once(&self, limit: i64, lease_secs: f64, ack: Ack<'_>) -> Result<ClaimBatch> {
        let batch = if self.capped.load(std::sync::atomic::Ordering::Relaxed) {
            self.claim_locked(limit, lease_secs, ack).await?
        } else {
            let batch = self
                .claim_statement(&self.pool, limit, lease_secs, false, ack)
                .await?;
            if batch.capped && !batch.paused {
                // The cap was set since we last looked: claim again, properly. The ack is
                // done already.
                let mut again = self.claim_locked(limit, lease_secs, Ack::NONE).await?;
                again.archived = batch.archived;
                again
            } else {
                batch
            }
        };
        self.capped
            .store(batch.capped, std::sync::atomic::Ordering::Relaxed);
        Ok(batch)
    }

    async fn claim_locked(&self, limit: i64, lease_secs: f64, ack: Ack<'_>) -> Result<ClaimBatch> {
        let mut tx = self.pool.begin().await?;
        db::queue::queue_lock_claims(&mut tx, self.queue.id).await?;
        let batch = self
            .claim_statement(&mut *tx, limit, lease_secs, true, ack)
            .await?;
        tx.commit().await?;
        Ok(batch)
    }

    async fn claim_statement<'c>(
        &self,
        db: impl sqlx::PgExecutor<'c>,
        limit: i64,
        lease_secs: f64,
        holds_claim_lock: bool,
        ack: Ack<'_>,
    ) -> Result<ClaimBatch> {
        jobs::job_claim_batch(
            db,
            self.queue.id,
            limit,
            lease_secs,
            self.worker_id,
            holds_claim_lock,
            ack,
        )
        .await?
        .ok_or_else(|| Error::QueueNotFound {
            queue: self.queue.name.to_string(),
        })
    }

    /// Buries undecodable jobs with the reason, releases the decodable ones of the same
    /// claim, and returns the decode error of the first undecodable job to report.
    async fn reject_undecodable(
        &self,
        undecodable: Vec<Undecodable>,
        decodable: Vec<(i64, Job<T>)>,
    ) -> Result<Error> {
        let type_name = std::any::type_name::<T>();
        for (id, token, source) in &undecodable {
            let reason = format!("payload does not decode as `{type_name}`: {source}");
            let buried = jobs::job_bury_batch(&self.pool, &[*id], &[*token], &reason).await?;
            metrics::add(&self.metrics.dead_lettered, buried.len());
            tracing::error!(queue = %self.queue.name, job_id = id, %reason, outcome = "dead_letter", "moved to dead letters");
        }
        if !decodable.is_empty() {
            let (tokens, ids): (Vec<i64>, Vec<i64>) = decodable
                .iter()
                .map(|(token, job)| (*token, job.id))
                .unzip();
            jobs::job_release_batch(&self.pool, &ids, &tokens).await?;
        }
        let mut undecodable = undecodable.into_iter();
        Ok(match undecodable.next() {
            Some((id, _, source)) => Error::Decode {
                id,
                queue: self.queue.name.to_string(),
                type_name,
                source,
            },
            None => Error::InvalidArgument("no undecodable job to reject".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_claim_statement_takes_at_most_max_claim_batch() {
        let sql = include_str!("../../../migrations/0009_lean_claim.sql");
        let limit = format!("LIMIT {}\n", super::super::MAX_CLAIM_BATCH);
        assert!(sql.contains(&limit), "the claim function has no `{limit}`");
    }
}
