//! A circuit breaker: after repeated failures, stop calling Redis for a while, then probe.
//!
//! Closed: calls go through; `threshold` consecutive failures open it. Open: calls are refused
//! at once for `cooldown`. Then one call at a time is let through as a probe: success closes
//! the breaker, failure opens it for another `cooldown`.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_ms() -> u64 {
    EPOCH.elapsed().as_millis() as u64 + 1
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    cooldown_ms: u64,
    failures: AtomicU32,
    /// 0 = closed; otherwise the ms (on [`EPOCH`]) until which calls are refused.
    open_until: AtomicU64,
    probing: AtomicBool,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold,
            cooldown_ms: cooldown.as_millis().max(1) as u64,
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probing: AtomicBool::new(false),
        }
    }

    /// Whether a call may go to Redis now.
    pub(crate) fn allow(&self) -> bool {
        let until = self.open_until.load(SeqCst);
        if until == 0 {
            return true;
        }
        now_ms() >= until
            && self
                .probing
                .compare_exchange(false, true, SeqCst, SeqCst)
                .is_ok()
    }

    /// Whether the breaker is open (Redis is being skipped, or probed once per cooldown).
    pub(crate) fn is_open(&self) -> bool {
        self.open_until.load(SeqCst) != 0
    }

    pub(crate) fn success(&self) {
        // The hot path (every successful call): reads only, so concurrent calls do not bounce
        // these cache lines between cores.
        if self.failures.load(SeqCst) != 0 {
            self.failures.store(0, SeqCst);
        }
        if self.open_until.load(SeqCst) != 0 && self.open_until.swap(0, SeqCst) != 0 {
            tracing::info!("redis answers again; the cache uses it again");
        }
        if self.probing.load(SeqCst) {
            self.probing.store(false, SeqCst);
        }
    }

    pub(crate) fn failure(&self) {
        let failures = self.failures.fetch_add(1, SeqCst) + 1;
        if failures >= self.threshold {
            let was = self.open_until.swap(now_ms() + self.cooldown_ms, SeqCst);
            if was == 0 {
                tracing::warn!(
                    failures,
                    cooldown_ms = self.cooldown_ms,
                    "redis keeps failing; skipping it (circuit breaker open)"
                );
            }
            self.probing.store(false, SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_probes_once_after_cooldown() {
        let b = Breaker::new(2, Duration::from_millis(1));
        assert!(b.allow());
        b.failure();
        assert!(b.allow() && !b.is_open());
        b.failure();
        assert!(b.is_open());
        while !b.allow() {
            std::thread::yield_now();
        }
        assert!(!b.allow(), "only one probe at a time");
        b.success();
        assert!(!b.is_open() && b.allow());
    }
}
