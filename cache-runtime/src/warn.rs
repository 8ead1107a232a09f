//! Rate-limited warnings: a cache that fails open must say so, but not once per request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (wall clock, shared between processes).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Milliseconds on this process's monotonic clock (never 0, never going back): for durations
/// measured inside one process, which a wall-clock step must not distort.
pub(crate) fn mono_ms() -> u64 {
    static EPOCH: std::sync::LazyLock<std::time::Instant> =
        std::sync::LazyLock::new(std::time::Instant::now);
    EPOCH.elapsed().as_millis() as u64 + 1
}

/// At most one warning per `interval_ms` for one call site.
pub(crate) struct RateLimit {
    last_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl RateLimit {
    pub(crate) const fn new() -> Self {
        Self {
            last_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Returns `Some(n)` when a warning may be logged now, `n` being how many were suppressed
    /// since the last one.
    pub(crate) fn allow(&self, interval_ms: u64) -> Option<u64> {
        let now = now_ms();
        let last = self.last_ms.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= interval_ms)
            && self
                .last_ms
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// Logs a `tracing` warning at most every 10 seconds per call site.
macro_rules! warn_limited {
    ($($arg:tt)+) => {{
        static LIMIT: $crate::warn::RateLimit = $crate::warn::RateLimit::new();
        if let Some(suppressed) = LIMIT.allow(10_000) {
            tracing::warn!(suppressed, $($arg)+);
        }
    }};
}
pub(crate) use warn_limited;
