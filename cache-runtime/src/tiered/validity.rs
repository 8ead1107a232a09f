//! The L1 validity lease (Gray and Cheriton, SOSP 1989): a process serves from its L1 only
//! while it has heard its own heartbeat come back through the bus within the term `T`,
//! measured on the monotonic clock from the heartbeat's *send* time.
//!
//! Redis delivers one channel's messages in order, so a heartbeat that comes back proves every
//! invalidation published before it was delivered to this process first. A process that stops
//! hearing the bus (paused, partitioned, its subscription dead) stops serving its L1 at most
//! `T` after it sent the last heartbeat that got through: every read checks the lease, so no
//! task has to run for it to expire. An invalidation elsewhere waits for this process's
//! acknowledgement or, failing that, `T` after Redis applied it (see [`super::acks`]); by then
//! this process has either dropped its copy or stopped trusting its L1.

use std::collections::VecDeque;
use std::sync::LazyLock;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Milliseconds on this process's monotonic clock (never 0).
pub(crate) fn mono_ms() -> u64 {
    u64::try_from(EPOCH.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
}

/// Heartbeat send times remembered to time their echoes.
const REMEMBERED_SENDS: usize = 64;

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Validity {
    /// Monotonic ms until which the L1 may be used; 0 = not trusted.
    until_ms: AtomicU64,
    sent: Mutex<VecDeque<(u64, u64)>>,
}

impl Validity {
    /// Whether the L1 may be used now.
    pub(crate) fn fresh(&self) -> bool {
        mono_ms() < self.until_ms.load(SeqCst)
    }

    /// Records that heartbeat `seq` is being sent now.
    pub(crate) fn sending(&self, seq: u64) {
        let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        if sent.len() == REMEMBERED_SENDS {
            sent.pop_front();
        }
        sent.push_back((seq, mono_ms()));
    }

    /// Heartbeat `seq` came back: the lease runs until its send time plus `term`. Returns
    /// whether the lease had lapsed (the caller then flushes the L1 *before* calling
    /// [`Validity::extend`], as messages may have been missed meanwhile).
    pub(crate) fn echoed(&self, seq: u64, term: Duration) -> Option<(u64, bool)> {
        let sent_ms = self
            .sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(s, _)| *s == seq)
            .map(|(_, at)| *at)?;
        let until = sent_ms.saturating_add(u64::try_from(term.as_millis()).unwrap_or(u64::MAX));
        Some((until, !self.fresh()))
    }

    /// Extends the lease to `until` (never shortens it).
    pub(crate) fn extend(&self, until: u64) {
        self.until_ms.fetch_max(until, SeqCst);
    }

    /// Ends the lease now (the subscription dropped: messages are being missed).
    pub(crate) fn revoke(&self) {
        self.until_ms.store(0, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_runs_from_the_send_time_of_the_echoed_heartbeat() {
        let v = Validity::default();
        assert!(!v.fresh());
        assert_eq!(v.echoed(1, Duration::from_secs(1)), None, "never sent");
        v.sending(1);
        let (until, lapsed) = v.echoed(1, Duration::from_secs(60)).unwrap();
        assert!(lapsed);
        v.extend(until);
        assert!(v.fresh());
        // An echo of an older heartbeat never shortens the lease.
        v.extend(until - 1);
        assert!(v.fresh());
        v.revoke();
        assert!(!v.fresh());
        v.sending(2);
        let (until, _) = v.echoed(2, Duration::ZERO).unwrap();
        v.extend(until);
        assert!(!v.fresh(), "a heartbeat older than the term gives no lease");
    }

    #[test]
    fn the_lease_lapses_by_itself_once_the_term_has_passed() {
        let v = Validity::default();
        v.sending(1);
        let (until, _) = v.echoed(1, Duration::from_millis(20)).unwrap();
        v.extend(until);
        let deadline = Instant::now() + Duration::from_secs(5);
        while v.fresh() {
            assert!(Instant::now() < deadline, "the lease never lapsed");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn an_echo_is_timed_while_later_heartbeats_are_sent() {
        let v = Validity::default();
        for seq in 1..=REMEMBERED_SENDS as u64 {
            v.sending(seq);
        }
        assert!(
            v.echoed(1, Duration::from_secs(60)).is_some(),
            "still remembered"
        );
        v.sending(REMEMBERED_SENDS as u64 + 1);
        assert_eq!(
            v.echoed(1, Duration::from_secs(60)),
            None,
            "the oldest is forgotten"
        );
        assert!(v.echoed(2, Duration::from_secs(60)).is_some());
    }
}
