//! A worker's background tasks: the heartbeat that keeps its leases alive, and the
//! listener that wakes its queue loops.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::db::Db;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::LeaseHolder;
use crate::db::{self, job::WAKE_CHANNEL};

/// Who the worker is, to re-register if a stall got it reaped.
pub(super) struct Identity {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) pid: i32,
    pub(super) queues: Vec<String>,
}

/// Every `lease / 3`: one statement marks the worker alive, extends every lease it holds
/// and reaps workers silent for `reap_after`. Leases it could not extend were taken over:
/// they are marked lost so the handlers learn of it and their results are not recorded.
pub(super) async fn heartbeat(
    pool: Db,
    worker: Identity,
    holders: Vec<Arc<dyn LeaseHolder>>,
    lease: Duration,
    reap_after: Duration,
    stop: CancellationToken,
) {
    let every = (lease / 3).max(Duration::from_millis(50));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let held: Vec<(Vec<i64>, Vec<i64>)> = holders.iter().map(|h| h.held()).collect();
        let ids: Vec<i64> = held
            .iter()
            .flat_map(|(ids, _)| ids.iter().copied())
            .collect();
        let tokens: Vec<i64> = held.iter().flat_map(|(_, t)| t.iter().copied()).collect();
        let beat = db::worker::worker_heartbeat(
            &pool,
            worker.id,
            &ids,
            &tokens,
            db::secs(lease),
            db::secs(reap_after),
        )
        .await;
        match beat {
            Ok(beat) => {
                let extended: HashSet<i64> = beat.extended.into_iter().collect();
                for (holder, (ids, tokens)) in holders.iter().zip(&held) {
                    let lost = holder.drop_unextended(ids, tokens, &extended);
                    if !lost.is_empty() {
                        tracing::warn!(worker_id = worker.id, job_ids = ?lost, "leases lost: the jobs were claimed by another consumer");
                    }
                }
                if !beat.registered {
                    tracing::warn!(
                        worker_id = worker.id,
                        "this worker was reaped while stalled; registering again"
                    );
                    let again = db::worker::worker_reregister(
                        &pool,
                        worker.id,
                        &worker.name,
                        worker.pid,
                        &worker.queues,
                    )
                    .await;
                    if let Err(err) = again {
                        tracing::warn!(worker_id = worker.id, error = %err, "re-registering failed");
                    }
                }
            }
            Err(err) => {
                tracing::warn!(worker_id = worker.id, error = %err, "heartbeat failed; retrying");
            }
        }
    }
}

/// Listens on `pgqrs_jobs` and wakes the loop of the queue named in each notification.
/// After a lost connection (notifications may have been missed) it wakes every loop.
pub(super) async fn listen(pool: Db, wakers: HashMap<i32, Arc<Notify>>, stop: CancellationToken) {
    let wake_all = || wakers.values().for_each(|w| w.notify_one());
    let mut listener = None;
    loop {
        let Some(active) = listener.as_mut() else {
            match subscribe(&pool).await {
                Ok(subscribed) => {
                    listener = Some(subscribed);
                    wake_all();
                }
                Err(err) => {
                    tracing::warn!(error = %err, "LISTEN failed; polling until it works");
                    if pause(&stop, Duration::from_secs(1)).await {
                        return;
                    }
                }
            }
            continue;
        };
        let received = tokio::select! {
            () = stop.cancelled() => return,
            received = active.try_recv() => received,
        };
        match received {
            Ok(Some(notification)) => {
                if let Some(waker) = notification
                    .payload()
                    .parse::<i32>()
                    .ok()
                    .and_then(|queue_id| wakers.get(&queue_id))
                {
                    waker.notify_one();
                }
            }
            // The connection dropped; the next call reconnects and listens again.
            Ok(None) => wake_all(),
            Err(err) => {
                tracing::warn!(error = %err, "listener failed; reconnecting");
                listener = None;
                wake_all();
                if pause(&stop, Duration::from_secs(1)).await {
                    return;
                }
            }
        }
    }
}

async fn subscribe(pool: &Db) -> sqlx::Result<PgListener> {
    let mut listener = PgListener::connect_with(pool.pg()).await?;
    listener.listen(WAKE_CHANNEL).await?;
    Ok(listener)
}

/// Sleeps for `duration`; `true` if the worker is stopping instead.
async fn pause(stop: &CancellationToken, duration: Duration) -> bool {
    tokio::select! {
        () = stop.cancelled() => true,
        () = tokio::time::sleep(duration) => false,
    }
}
