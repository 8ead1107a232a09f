//! Pending invalidations: those that could not reach Redis, kept and re-applied (and
//! announced) by a background task as soon as Redis answers again.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use super::{Host, Pending, drop_local, perform};

/// How often the recovery task retries at most (it is also woken by the bus).
const RECOVERY_RETRY: Duration = Duration::from_millis(25);
/// Pending invalidations kept before they collapse into [`Pending::All`].
const MAX_PENDING: usize = 1024;

/// The pending invalidations of one cache, each with the sequence number of its latest request.
#[derive(Default)]
pub(crate) struct PendingSet {
    ops: Mutex<Vec<(Pending, u64)>>,
    seq: AtomicU64,
    any: AtomicBool,
    recovering: AtomicBool,
    pub(super) wake: Notify,
    /// Woken whenever the set becomes empty.
    emptied: Notify,
}

impl PendingSet {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Pending, u64)>> {
        self.ops.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether anything is pending (one atomic load: the hit path asks).
    pub(crate) fn any(&self) -> bool {
        self.any.load(SeqCst)
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether a pending invalidation covers this key.
    pub(crate) fn covers(&self, namespace: &str, key: &str) -> bool {
        self.lock().iter().any(|(p, _)| match p {
            Pending::Key(k) => k == key,
            Pending::Namespace(n) => n == namespace,
            Pending::All => true,
        })
    }

    pub(crate) fn add(&self, op: Pending) {
        let seq = self.seq.fetch_add(1, SeqCst) + 1;
        let mut pending = self.lock();
        if let Some(entry) = pending.iter_mut().find(|(p, _)| *p == op) {
            // Requested again: the recovery must apply it after this request.
            entry.1 = seq;
        } else if pending.len() >= MAX_PENDING {
            pending.clear();
            pending.push((Pending::All, seq));
        } else {
            pending.push((op, seq));
        }
        self.any.store(true, SeqCst);
    }

    /// The pending invalidations now, each with the sequence number of its latest request.
    fn snapshot(&self) -> Vec<(Pending, u64)> {
        self.lock().clone()
    }

    /// `op`, as requested by `seq`, was re-applied: it is done unless it was requested again
    /// meanwhile (that request came later, so it is re-applied once more).
    fn applied(&self, op: &Pending, seq: u64) {
        self.lock().retain(|(p, s)| !(p == op && *s == seq));
    }
}

/// Waits until every pending invalidation of `host` has been re-applied to Redis (and
/// announced), or until `limit` has passed; returns how many are still pending (see
/// [`crate::Cache::flush_pending`]). Cancel safe: it only waits.
pub(crate) async fn flush_pending<H: Host>(host: &Arc<H>, limit: Duration) -> usize {
    let pending = &host.bus().pending;
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let emptied = pending.emptied.notified();
        if !pending.any() {
            return 0;
        }
        spawn(host);
        pending.wake.notify_one();
        if tokio::time::timeout_at(deadline, emptied).await.is_err() {
            return pending.len();
        }
    }
}

/// Starts the recovery task unless it runs.
pub(super) fn spawn<H: Host>(host: &Arc<H>) {
    if host.bus().pending.recovering.swap(true, SeqCst) {
        return;
    }
    crate::background::spawn(recover(Arc::downgrade(host)));
}

/// Re-applies pending invalidations, oldest first, until none is left.
async fn recover<H: Host>(weak: Weak<H>) {
    loop {
        {
            let Some(host) = weak.upgrade() else { return };
            let set = &host.bus().pending;
            for (op, seq) in set.snapshot() {
                if perform(&*host, &op, 0, true).await.is_err() {
                    break;
                }
                drop_local(host.local(), &op).await;
                set.applied(&op, seq);
            }
            let pending = set.lock();
            if pending.is_empty() {
                set.any.store(false, SeqCst);
                set.recovering.store(false, SeqCst);
                set.emptied.notify_waiters();
                tracing::info!("pending invalidations re-applied");
                return;
            }
        }
        let Some(host) = weak.upgrade() else { return };
        // `notify_one` leaves a permit when nobody waits, so no wake-up is lost here.
        let _ = tokio::time::timeout(RECOVERY_RETRY, host.bus().pending.wake.notified()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalidation_requested_again_while_it_was_re_applied_stays_pending() {
        let set = PendingSet::default();
        let (key, other) = (Pending::Key("k".into()), Pending::Key("o".into()));
        set.add(key.clone());
        set.add(other.clone());
        let taken = set.snapshot();
        set.add(key.clone()); // requested again after the recovery took it
        for (op, seq) in taken {
            set.applied(&op, seq);
        }
        assert_eq!(set.snapshot().len(), 1);
        assert!(set.covers("", "k"), "the later request is still to apply");
        assert!(!set.covers("", "o"), "the other one is done");
        let (op, seq) = set.snapshot().remove(0);
        set.applied(&op, seq);
        assert_eq!(set.len(), 0);
    }

    #[test]
    fn a_namespace_or_everything_covers_its_keys_only() {
        let set = PendingSet::default();
        set.add(Pending::Namespace("user".into()));
        assert!(set.covers("user", "k"));
        assert!(!set.covers("item", "k"));
        set.add(Pending::All);
        assert!(set.covers("item", "k"));
    }
}
