//! The leases one consumer holds, by job id, and the fenced settling of them.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Mutex, MutexGuard};

use crate::{Error, Lease, Result};

/// Every lease a consumer holds. A lease leaves the book once the database answered a
/// transition on it: the job then left the queue, or someone else holds it now.
#[derive(Debug, Default)]
pub(crate) struct LeaseBook {
    leases: Mutex<HashMap<i64, Lease>>,
}

impl LeaseBook {
    fn lock(&self) -> MutexGuard<'_, HashMap<i64, Lease>> {
        // Every update is one insert or remove, so the map is consistent even after a panic.
        self.leases
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn hold(&self, job_id: i64, lease: Lease) {
        self.lock().insert(job_id, lease);
    }

    /// The token of a held job, or [`Error::LeaseLost`].
    pub(crate) fn token(&self, job_id: i64) -> Result<i64> {
        self.lock()
            .get(&job_id)
            .map(Lease::token)
            .ok_or(Error::LeaseLost {
                job_ids: vec![job_id],
            })
    }

    /// The held jobs among `ids`, with their tokens.
    pub(crate) fn held(&self, ids: &[i64]) -> (Vec<i64>, Vec<i64>) {
        let leases = self.lock();
        ids.iter()
            .filter_map(|id| leases.get(id).map(|lease| (*id, lease.token())))
            .unzip()
    }

    /// Every held job, with its token.
    pub(crate) fn all(&self) -> (Vec<i64>, Vec<i64>) {
        self.lock()
            .iter()
            .map(|(id, lease)| (*id, lease.token()))
            .unzip()
    }

    /// Forgets `ids` after the database answered; those not in `done` are marked lost.
    pub(crate) fn forget(&self, ids: &[i64], done: &HashSet<i64>) {
        let mut leases = self.lock();
        for id in ids {
            if let Some(lease) = leases.remove(id)
                && !done.contains(id)
            {
                lease.mark_lost();
            }
        }
    }

    /// After a lease extension of `(ids, tokens)` that reached only `extended`: the others
    /// are lost, unless the job was settled or claimed anew meanwhile (another token).
    /// Returns the ids found lost.
    pub(crate) fn drop_unextended(
        &self,
        ids: &[i64],
        tokens: &[i64],
        extended: &HashSet<i64>,
    ) -> Vec<i64> {
        let mut leases = self.lock();
        let mut lost = Vec::new();
        for (id, token) in ids.iter().zip(tokens) {
            if extended.contains(id) {
                continue;
            }
            if leases.get(id).is_some_and(|lease| lease.token() == *token)
                && let Some(lease) = leases.remove(id)
            {
                lease.mark_lost();
                lost.push(*id);
            }
        }
        lost
    }

    /// Runs a lease-fenced transition on the held jobs among `ids`. Returns `Ok` when it
    /// reached every one of `ids`, else [`Error::LeaseLost`] listing the others (the
    /// transition still applied to the held ones).
    pub(crate) async fn settle<F, Fut>(&self, ids: &[i64], transition: F) -> Result<()>
    where
        F: FnOnce(Vec<i64>, Vec<i64>) -> Fut,
        Fut: Future<Output = sqlx::Result<Vec<i64>>>,
    {
        let (held, tokens) = self.held(ids);
        let done: HashSet<i64> = if held.is_empty() {
            HashSet::new()
        } else {
            transition(held.clone(), tokens)
                .await?
                .into_iter()
                .collect()
        };
        self.forget(&held, &done);
        let lost: Vec<i64> = ids
            .iter()
            .copied()
            .filter(|id| !done.contains(id))
            .collect();
        if lost.is_empty() {
            Ok(())
        } else {
            Err(Error::LeaseLost { job_ids: lost })
        }
    }
}
