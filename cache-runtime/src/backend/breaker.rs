//! A circuit breaker: after repeated failures, stop calling Redis for a while, then probe.
//!
//! Closed: calls go through; `threshold` consecutive failures open it. Open: calls are refused
//! at once for `cooldown`. Then one call at a time is let through as a probe: success closes
//! the breaker, failure opens it for another full `cooldown`.
//!
//! # Cancellation
//! [`Breaker::allow`] hands out a [`Permit`]; the call reports its outcome by consuming it with
//! [`Permit::success`] or [`Permit::failure`]. A call whose future is dropped before Redis
//! answers (a client disconnect, a timeout layer, `select!`) reports neither: dropping the
//! permit of a *probe* frees the probe slot at once, without counting a failure and without
//! restarting the cooldown (the cancelled probe learnt nothing about Redis). The breaker stays
//! open and the next call becomes the probe. So a cancelled probe never disables Redis for
//! good: Redis is used again at most one completed call after it answers.

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
    /// Held by the one probe in flight, through its [`Permit`].
    probing: AtomicBool,
}

/// Leave to make one call, from [`Breaker::allow`] or [`Breaker::bypass`]. Report the outcome
/// with [`Permit::success`] or [`Permit::failure`]; dropping it unreported (the call was
/// cancelled) frees the probe slot it may hold.
#[must_use = "report the call's outcome with `success` or `failure`"]
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    breaker: &'a Breaker,
    /// Whether this permit holds the probe slot.
    probe: bool,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold,
            cooldown_ms: u64::try_from(cooldown.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probing: AtomicBool::new(false),
        }
    }

    /// Leave to call Redis now: always while closed; while open, only for the one probe after
    /// the cooldown.
    pub(crate) fn allow(&self) -> Option<Permit<'_>> {
        let until = self.open_until.load(SeqCst);
        if until == 0 {
            return Some(Permit {
                breaker: self,
                probe: false,
            });
        }
        let probe = now_ms() >= until
            && self
                .probing
                .compare_exchange(false, true, SeqCst, SeqCst)
                .is_ok();
        // Not `then_some`: a permit built and dropped unused would free the slot it never took.
        if probe {
            Some(Permit {
                breaker: self,
                probe: true,
            })
        } else {
            None
        }
    }

    /// Leave to call Redis whatever the state (recovery's own probes); holds no probe slot.
    pub(crate) fn bypass(&self) -> Permit<'_> {
        Permit {
            breaker: self,
            probe: false,
        }
    }

    /// Whether the breaker is open (Redis is being skipped, or probed once per cooldown).
    pub(crate) fn is_open(&self) -> bool {
        self.open_until.load(SeqCst) != 0
    }

    fn release_probe(&self) {
        self.probing.store(false, SeqCst);
    }
}

impl Permit<'_> {
    /// The call succeeded (Redis answered): close the breaker.
    pub(crate) fn success(self) {
        let b = self.breaker;
        // The hot path (every successful call): reads only, so concurrent calls do not bounce
        // these cache lines between cores.
        if b.failures.load(SeqCst) != 0 {
            b.failures.store(0, SeqCst);
        }
        if b.open_until.load(SeqCst) != 0 && b.open_until.swap(0, SeqCst) != 0 {
            tracing::info!("redis answers again; the cache uses it again");
        }
        // `Drop` frees the probe slot, after the breaker was closed.
    }

    /// The call failed (transport error or timeout): count it; open the breaker (for a full
    /// cooldown from now) at the threshold, and always after a failed probe.
    pub(crate) fn failure(self) {
        let b = self.breaker;
        let failures = b.failures.fetch_add(1, SeqCst) + 1;
        if failures >= b.threshold || self.probe {
            let was = b
                .open_until
                .swap(now_ms().saturating_add(b.cooldown_ms), SeqCst);
            if was == 0 {
                tracing::warn!(
                    failures,
                    cooldown_ms = b.cooldown_ms,
                    "redis keeps failing; skipping it (circuit breaker open)"
                );
            }
        }
        // `Drop` frees the probe slot, after the cooldown was restarted.
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe {
            self.breaker.release_probe();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens `b` (threshold 1) and waits out its cooldown.
    fn open_and_cool(b: &Breaker) {
        b.allow().expect("closed").failure();
        assert!(b.is_open());
        let deadline = Instant::now() + Duration::from_secs(5);
        while now_ms() < b.open_until.load(SeqCst) {
            assert!(Instant::now() < deadline, "cooldown never ended");
            std::thread::yield_now();
        }
    }

    #[test]
    fn opens_after_threshold_and_probes_once_after_cooldown() {
        let b = Breaker::new(2, Duration::from_millis(1));
        b.allow().expect("closed").failure();
        assert!(!b.is_open());
        b.allow().expect("still closed").failure();
        assert!(b.is_open());
        let deadline = Instant::now() + Duration::from_secs(5);
        let probe = loop {
            if let Some(p) = b.allow() {
                break p;
            }
            assert!(Instant::now() < deadline, "no probe after the cooldown");
            std::thread::yield_now();
        };
        assert!(b.allow().is_none(), "only one probe at a time");
        probe.success();
        assert!(!b.is_open() && b.allow().is_some());
    }

    #[test]
    fn a_success_resets_the_count_of_consecutive_failures() {
        let b = Breaker::new(3, Duration::from_secs(60));
        for _ in 0..2 {
            b.allow().expect("closed").failure();
        }
        b.allow().expect("closed").success();
        for _ in 0..2 {
            b.allow().expect("closed").failure();
        }
        assert!(
            !b.is_open(),
            "2 failures since the last success, threshold 3"
        );
        b.allow().expect("closed").failure();
        assert!(b.is_open());
    }

    #[test]
    fn a_dropped_probe_frees_its_slot_at_once_and_keeps_the_breaker_open() {
        let b = Breaker::new(1, Duration::from_millis(1));
        open_and_cool(&b);
        let until = b.open_until.load(SeqCst);
        drop(b.allow().expect("the probe"));
        assert!(b.is_open(), "a cancelled probe learnt nothing: still open");
        assert_eq!(
            b.open_until.load(SeqCst),
            until,
            "and the cooldown is not restarted"
        );
        let next = b.allow().expect("the next call is the probe at once");
        next.success();
        assert!(!b.is_open());
    }

    #[test]
    fn a_failed_probe_reopens_for_a_full_cooldown() {
        let b = Breaker::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            b.allow().expect("closed").failure();
        }
        // Pretend the cooldown is over.
        b.open_until.store(now_ms(), SeqCst);
        let before = now_ms();
        b.allow().expect("the probe").failure();
        let until = b.open_until.load(SeqCst);
        assert!(until >= before + 60_000, "reopened for a full cooldown");
        assert!(b.allow().is_none(), "refused during the new cooldown");
        assert!(
            !b.probing.load(SeqCst),
            "the slot is free for the next probe"
        );
    }

    #[test]
    fn concurrent_allow_admits_one_probe() {
        let b = Breaker::new(1, Duration::from_millis(1));
        open_and_cool(&b);
        let start = std::sync::Barrier::new(8);
        let admitted = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for i in 0..8 {
                let (b, start, admitted) = (&b, &start, &admitted);
                s.spawn(move || {
                    start.wait();
                    // Hold the permit until every thread has tried.
                    let permit = b.allow();
                    admitted.lock().unwrap().push((i, permit.is_some()));
                    start.wait();
                    drop(permit);
                });
            }
        });
        let admitted = admitted.into_inner().unwrap();
        assert_eq!(
            admitted.iter().filter(|(_, ok)| *ok).count(),
            1,
            "{admitted:?}"
        );
    }
}
