//! Fill leases held by this process: renewed in the background while their body runs, and
//! held in a guard ([`LeaseGuard`]) that gives the lease back if the fill is dropped and tells
//! waiting processes when the fill ended (see `fill_notice.rs`).

use std::time::Duration;

use super::*;
use crate::backend::lease::LeaseToken;
use crate::fill_notice::Notice;

/// A lease being renewed: its key and token, and until when (`None`: while it is held).
struct Renewed {
    key: String,
    token: LeaseToken,
    until: Option<tokio::time::Instant>,
}

/// The fill leases this cache holds, renewed by one background task every half term (one
/// task per cache, started on first use: a miss registers its lease, it does not spawn).
#[derive(Default)]
pub(crate) struct Renewals {
    active: std::sync::Mutex<std::collections::HashMap<u64, Renewed>>,
    next: std::sync::atomic::AtomicU64,
    started: std::sync::atomic::AtomicBool,
}

impl Renewals {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, Renewed>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Renews every registered lease each half term, while the cache lives.
async fn renew_leases(weak: std::sync::Weak<Inner>) {
    loop {
        let term = {
            let Some(inner) = weak.upgrade() else { return };
            inner.config.fill_lease
        };
        tokio::time::sleep(term / 2).await;
        let Some(inner) = weak.upgrade() else { return };
        let Some(remote) = &inner.remote else { return };
        let now = tokio::time::Instant::now();
        // A lease with a limit is extended up to its limit, never past it: it lapses then.
        let extension = |until: Option<tokio::time::Instant>| {
            until.map_or(term, |until| until.saturating_duration_since(now).min(term))
        };
        let leases: Vec<(u64, String, LeaseToken, Duration)> = {
            let mut active = inner.renewals.lock();
            active.retain(|_, lease| !extension(lease.until).is_zero());
            active
                .iter()
                .map(|(id, lease)| {
                    let by = extension(lease.until);
                    (*id, lease.key.clone(), lease.token.clone(), by)
                })
                .collect()
        };
        for (id, key, token, by) in leases {
            if matches!(remote.renew_lease(&key, &token, by).await, Ok(false)) {
                inner.renewals.lock().remove(&id);
            }
        }
    }
}

/// A fill lease held by this process. Dropped before [`LeaseGuard::settled`] (the caller was
/// cancelled, the body panicked or produced nothing to store), it gives the lease back at
/// once so other processes waiting for the key go on; it is renewed while it lives.
pub(crate) struct LeaseGuard {
    cache: Cache,
    id: u64,
    key: String,
    token: LeaseToken,
    settled: bool,
}

impl LeaseGuard {
    /// Registers the lease on `key` for renewal, for at most `hold` (`None`: while it lives).
    pub(super) fn new(cache: &Cache, key: &str, token: LeaseToken, hold: Option<Duration>) -> Self {
        let renewals = &cache.inner.renewals;
        let id = renewals
            .next
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let renewed = Renewed {
            key: key.to_owned(),
            token: token.clone(),
            until: hold.map(|hold| tokio::time::Instant::now() + hold),
        };
        renewals.lock().insert(id, renewed);
        cache.inner.notices.hold(key);
        if !renewals
            .started
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            crate::background::spawn(renew_leases(std::sync::Arc::downgrade(&cache.inner)));
        }
        Self {
            cache: cache.clone(),
            id,
            key: key.to_owned(),
            token,
            settled: false,
        }
    }

    pub(crate) fn token(&self) -> &LeaseToken {
        &self.token
    }

    /// Gives the lease back now (the fill stored nothing), so waiting processes go on.
    pub(crate) async fn release(mut self) {
        self.settled = true;
        if let Some(remote) = &self.cache.inner.remote {
            let _ = remote.release_lease(&self.key, &self.token).await;
        }
    }

    /// The store used the lease (it replaced the marker, or found it gone): nothing to give back.
    pub(crate) fn settled(mut self) {
        self.settled = true;
    }

    /// Keeps the lease for `term` more, then lets it lapse (a recomputation whose source failed:
    /// no process tries again before then).
    pub(crate) async fn hold_for(mut self, term: Duration) {
        self.settled = true;
        if let Some(remote) = &self.cache.inner.remote
            && !matches!(
                remote.renew_lease(&self.key, &self.token, term).await,
                Ok(true)
            )
        {
            let _ = remote.release_lease(&self.key, &self.token).await;
        }
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.cache.inner.renewals.lock().remove(&self.id);
        // Another process waits for this fill: tell it the fill ended (after the lease is
        // given back, when it is given back here).
        let wanted = self.cache.inner.notices.release(&self.key);
        if self.settled && !wanted {
            return;
        }
        let (cache, key, token) = (
            self.cache.clone(),
            std::mem::take(&mut self.key),
            self.token.clone(),
        );
        let settled = self.settled;
        crate::background::spawn(async move {
            let Some(remote) = &cache.inner.remote else {
                return;
            };
            if !settled {
                let _ = remote.release_lease(&key, &token).await;
            }
            if wanted {
                cache.publish_notice(Notice::Filled(key)).await;
            }
        });
    }
}

impl Cache {
    /// Publishes a fill notice on `{prefix}:__fill` (a lost one only costs latency).
    pub(super) async fn publish_notice(&self, notice: Notice) {
        if let Some(remote) = &self.inner.remote {
            let channel = crate::fill_notice::channel(&self.inner.config.prefix);
            let _ = remote.publish(&channel, &notice.encode()).await;
        }
    }
}
