//! Coalesces the wake-ups of one process's concurrent enqueues into one queue.
//!
//! A transaction that sends `NOTIFY` takes a cluster-wide lock when it commits and holds it
//! through its commit's WAL flush, so notifying transactions commit one after another (pgbench,
//! 8 clients, synchronous commit on: about 4,500 notifying inserts/s against 13,000 without).
//! So at most one enqueue per queue and process carries the wake-up in its own statement. An
//! enqueue that commits while another one carries it owes a wake-up, and whichever enqueue
//! finishes with nothing in flight pays it with a bare `NOTIFY`: a transaction that wrote
//! nothing else commits without waiting for a WAL flush (1,000 of them: 1 flush).
//!
//! No wake-up is lost: an enqueue sets `owed` after its commit and then tries to take
//! `notifying`; a carrier clears `notifying` and then reads `owed`. Whichever runs second
//! sees the other's write and sends the wake-up. (A wake-up that fails to go out is owed
//! again, to the next enqueue; one whose enqueue is dropped while sending it is lost. Workers
//! then find the jobs at their next poll.)

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

/// The wake-up state of one queue in this process.
#[derive(Debug, Default)]
pub(crate) struct WakeGate {
    /// An enqueue is carrying a wake-up (in its statement, or as a bare `NOTIFY`).
    notifying: AtomicBool,
    /// An enqueue committed without a wake-up sent after its commit.
    owed: AtomicBool,
}

/// The right to send the queue's wake-up; released on drop, even if the enqueue's future is
/// dropped half-way.
#[derive(Debug)]
pub(crate) struct Carrier<'a>(&'a WakeGate);

impl Drop for Carrier<'_> {
    fn drop(&mut self) {
        self.0.notifying.store(false, SeqCst);
    }
}

impl WakeGate {
    /// The right to send the wake-up, unless another enqueue holds it.
    pub(crate) fn try_carry(&self) -> Option<Carrier<'_>> {
        self.notifying
            .compare_exchange(false, true, SeqCst, SeqCst)
            .is_ok()
            // Lazily: a `Carrier` made and dropped here would release the real one.
            .then(|| Carrier(self))
    }

    /// Records a commit that went out without a wake-up (or a wake-up taken by
    /// [`WakeGate::collect`] that could not be sent).
    pub(crate) fn owe(&self) {
        self.owed.store(true, SeqCst);
    }

    /// Takes what is owed, if this caller may pay it: `Some` means send one wake-up now,
    /// holding the carrier until it is sent ([`WakeGate::owe`] it again if sending failed).
    pub(crate) fn collect(&self) -> Option<Carrier<'_>> {
        if !self.owed.load(SeqCst) {
            return None;
        }
        let carrier = self.try_carry()?;
        // Owed may have been paid between the load and the take.
        self.owed.swap(false, SeqCst).then_some(carrier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_carrier_at_a_time() {
        let gate = WakeGate::default();
        let first = gate.try_carry();
        assert!(first.is_some());
        assert!(gate.try_carry().is_none());
        assert!(
            gate.try_carry().is_none(),
            "a refusal left the carrier in place"
        );
        drop(first);
        assert!(gate.try_carry().is_some());
    }

    #[test]
    fn an_owed_wake_up_is_collected_once_and_only_without_a_carrier() {
        let gate = WakeGate::default();
        assert!(gate.collect().is_none(), "nothing owed");
        gate.owe();
        let carrying = gate.try_carry();
        assert!(gate.collect().is_none(), "the carrier pays it");
        drop(carrying);
        let paying = gate.collect();
        assert!(paying.is_some());
        drop(paying);
        assert!(gate.collect().is_none(), "paid once");
        gate.owe();
        let failed = gate.collect();
        assert!(failed.is_some());
        gate.owe();
        drop(failed);
        assert!(gate.collect().is_some(), "a failed payment is owed again");
    }
}
