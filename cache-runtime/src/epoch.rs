//! Per-key invalidation epochs, so an invalidation is not undone by a store that overlapped it.
//!
//! A miss takes a [`KeyTicket`] before it reads Redis or runs the body; an invalidation of the
//! key bumps the key's epoch before and after it removes the entry. A store (or an L1 fill)
//! whose ticket is no longer current skips storing: the value it holds may predate the
//! invalidation. It is still returned to its caller. Keys share 4096 stripes, so an unrelated
//! invalidation can, rarely, skip a store too; that costs one extra miss, never a stale read.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

const STRIPES: usize = 4096;

/// The epochs of all keys, striped.
pub(crate) struct KeyEpochs {
    stripes: Box<[AtomicU64]>,
}

/// A key's epoch as seen when a miss began.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyTicket {
    stripe: usize,
    epoch: u64,
}

fn stripe_of(key: &str) -> usize {
    // FNV-1a: cheap, and only used to spread keys over stripes within this process.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.as_bytes() {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash as usize) % STRIPES
}

impl Default for KeyEpochs {
    fn default() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl KeyEpochs {
    pub(crate) fn ticket(&self, key: &str) -> KeyTicket {
        let stripe = stripe_of(key);
        KeyTicket {
            stripe,
            epoch: self.stripes[stripe].load(SeqCst),
        }
    }

    pub(crate) fn is_current(&self, ticket: KeyTicket) -> bool {
        self.stripes[ticket.stripe].load(SeqCst) == ticket.epoch
    }

    pub(crate) fn bump(&self, key: &str) {
        self.stripes[stripe_of(key)].fetch_add(1, SeqCst);
    }
}

/// Everything an invalidation of one key can change in this process, as seen at one moment:
/// the key's epoch, its namespace's generation epoch and the whole cache's. A single-flight
/// records the stamp it started under; a caller whose stamp differs must not join it, since
/// an invalidation (of the key, its namespace or everything) returned in between and the
/// flight's body may have read what it retired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    key: u64,
    namespace: u64,
    all: u64,
    /// The HTTP path generation's epoch (0 outside HTTP handlers).
    path: u64,
    /// Non-zero: this stamp matches no other (the caller cannot know whether it missed an
    /// invalidation, so it joins no flight that has begun).
    solo: u64,
}

impl Stamp {
    pub(crate) fn new(key: KeyTicket, namespace: u64, all: u64) -> Self {
        Self {
            key: key.epoch,
            namespace,
            all,
            path: 0,
            solo: 0,
        }
    }

    /// The stamp of a request to an HTTP handler: `invalidate_path` retires its flights too.
    pub(crate) fn with_path(self, path: u64) -> Self {
        Self { path, ..self }
    }

    /// A stamp equal to no other: for a process that cannot hear other processes'
    /// invalidations now (its bus is down), so it must not join a flight that may predate one.
    pub(crate) fn solo(self) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self {
            solo: NEXT.fetch_add(1, SeqCst),
            ..self
        }
    }

    /// Whether this stamp is [`Stamp::solo`].
    pub(crate) fn is_solo(&self) -> bool {
        self.solo != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bump_retires_tickets_of_that_key() {
        let epochs = KeyEpochs::default();
        let t = epochs.ticket("a");
        assert!(epochs.is_current(t));
        epochs.bump("a");
        assert!(!epochs.is_current(t));
        assert!(epochs.is_current(epochs.ticket("a")));
    }

    #[test]
    fn keys_spread_over_the_stripes() {
        // A bump retires every key of its stripe: spread matters for the hit ratio (not for
        // correctness). 1,000 keys over 4,096 stripes land on well over 800 distinct ones.
        let stripes: std::collections::HashSet<usize> = (0..1_000)
            .map(|i| stripe_of(&format!("fn:app:key{i}")))
            .collect();
        assert!(stripes.len() > 800, "{} distinct stripes", stripes.len());
        let epochs = KeyEpochs::default();
        let other = (0..100)
            .map(|i| format!("k{i}"))
            .find(|k| stripe_of(k) != stripe_of("a"))
            .unwrap();
        let t = epochs.ticket(&other);
        epochs.bump("a");
        assert!(epochs.is_current(t), "a bump of another stripe's key");
    }

    #[test]
    fn stamps_differ_by_path_and_solo_ones_match_nothing() {
        let epochs = KeyEpochs::default();
        let base = Stamp::new(epochs.ticket("k"), 1, 1);
        assert_eq!(base.with_path(3), base.with_path(3));
        assert_ne!(base.with_path(3), base.with_path(4));
        assert_ne!(base.with_path(3), base);
        let solo = base.solo();
        assert_ne!(solo, base);
        assert_ne!(solo, base.solo());
        assert_eq!(solo, solo);
    }
}
