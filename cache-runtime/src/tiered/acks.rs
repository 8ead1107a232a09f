//! Acknowledged invalidations: an invalidation returns once every live process has dropped its
//! copy, or once the L1 validity term has passed for those that did not answer.
//!
//! Members are the instances whose messages (heartbeats, mostly) this instance heard within the
//! term `T`. When an instance's own invalidation comes back through its subscription it has
//! heard everything published before it, so the members at that moment include every process
//! whose L1 lease could still be fresh (a process whose last heartbeat before the invalidation
//! is older than `T` has stopped serving its L1 unless it heard a later echo, which comes after
//! the invalidation, so it applied that first). Each member acknowledges after it dropped its
//! local state; the invalidation waits for all of them, and at most until `T` after Redis
//! applied it (see [`super::validity`]).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::validity::mono_ms;

#[derive(Debug, Default)]
struct Wait {
    /// Who must acknowledge, known once the invalidation came back to us.
    members: Option<Vec<u64>>,
    acked: HashSet<u64>,
    notify: Arc<Notify>,
}

impl Wait {
    fn complete(&self) -> bool {
        self.members
            .as_ref()
            .is_some_and(|m| m.iter().all(|s| self.acked.contains(s)))
    }
}

/// Membership and the invalidations waiting for acknowledgements.
#[derive(Debug, Default)]
pub(crate) struct Acks {
    members: Mutex<HashMap<u64, u64>>,
    waits: Mutex<HashMap<u64, Wait>>,
    next_seq: AtomicU64,
}

/// An invalidation waiting for acknowledgements; dropping it stops waiting.
pub(crate) struct Waiting<'a> {
    acks: &'a Acks,
    pub(crate) seq: u64,
    notify: Arc<Notify>,
}

impl Acks {
    /// Another instance was heard from.
    pub(crate) fn heard(&self, source: u64) {
        let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        members.insert(source, mono_ms());
    }

    /// Registers an invalidation about to be published; its sequence number is never 0.
    pub(crate) fn begin(&self) -> Waiting<'_> {
        let seq = self.next_seq.fetch_add(1, SeqCst) + 1;
        let wait = Wait::default();
        let notify = wait.notify.clone();
        self.lock_waits().insert(seq, wait);
        Waiting {
            acks: self,
            seq,
            notify,
        }
    }

    /// Our own invalidation `seq` came back: whoever was heard within `term` must acknowledge.
    pub(crate) fn echoed(&self, seq: u64, term: Duration) {
        let since = mono_ms().saturating_sub(u64::try_from(term.as_millis()).unwrap_or(u64::MAX));
        let members: Vec<u64> = {
            let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
            members.retain(|_, heard| *heard >= since);
            members.keys().copied().collect()
        };
        self.update(seq, |wait| wait.members = Some(members));
    }

    /// `source` acknowledged our invalidation `seq`.
    pub(crate) fn acked(&self, source: u64, seq: u64) {
        self.update(seq, |wait| {
            wait.acked.insert(source);
        });
    }

    fn update(&self, seq: u64, change: impl FnOnce(&mut Wait)) {
        let mut waits = self.lock_waits();
        if let Some(wait) = waits.get_mut(&seq) {
            change(wait);
            if wait.complete() {
                wait.notify.notify_one();
            }
        }
    }

    fn lock_waits(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Wait>> {
        self.waits.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many invalidations are waiting (diagnostics, tests).
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.lock_waits().len()
    }
}

impl Waiting<'_> {
    /// Waits until every member acknowledged, or until `deadline`. Returns whether all did.
    pub(crate) async fn until(&self, deadline: tokio::time::Instant) -> bool {
        loop {
            let notified = self.notify.notified();
            if self
                .acks
                .lock_waits()
                .get(&self.seq)
                .is_some_and(Wait::complete)
            {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.acks.lock_waits().remove(&self.seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_start_at_1_since_0_asks_for_no_acknowledgement() {
        let acks = Acks::default();
        let (first, second) = (acks.begin().seq, acks.begin().seq);
        assert_eq!((first, second), (1, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn waits_for_every_member_heard_within_the_term() {
        let acks = Acks::default();
        acks.heard(7);
        acks.heard(9);
        let waiting = acks.begin();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        acks.acked(7, waiting.seq);
        acks.echoed(waiting.seq, Duration::from_secs(60));
        assert!(
            !acks.lock_waits()[&waiting.seq].complete(),
            "9 has not acknowledged"
        );
        acks.acked(9, waiting.seq);
        assert!(waiting.until(deadline).await);
        drop(waiting);
        assert_eq!(acks.waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_member_costs_the_deadline_and_no_echo_means_no_completion() {
        let acks = Acks::default();
        acks.heard(7);
        let waiting = acks.begin();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
        acks.echoed(waiting.seq, Duration::from_secs(60));
        assert!(!waiting.until(deadline).await);
        let alone = acks.begin();
        assert!(
            !alone.until(deadline).await,
            "members unknown until the echo"
        );
        acks.echoed(alone.seq, Duration::from_secs(60));
        acks.acked(7, alone.seq);
        assert!(alone.until(deadline).await);
    }
}
