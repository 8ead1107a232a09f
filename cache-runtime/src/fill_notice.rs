//! Fill notices: a miss waiting on another process's fill lease is woken by the bus when that
//! fill ends, instead of finding out at its next poll of the entry.
//!
//! The notices travel on a channel of their own, `{prefix}:__fill` (the invalidation bus's
//! channel carries only what consistency depends on, and a process of an older release does
//! not hear them):
//!
//! ```text
//! cr2|W|<key>    a process waits for the fill of <key>
//! cr2|F|<key>    the fill of <key> ended (stored, or its lease given back)
//! ```
//!
//! Only contended fills cost messages: a waiting process publishes `W` once per wait, and the
//! holder publishes `F` when its fill ends only if it heard a `W` for that key while it held
//! the lease. A notice is never trusted for what it says: it only makes the waiter read Redis
//! again at once. So a lost, late or forged notice costs latency, never consistency, and the
//! waiter keeps polling the entry (an interval doubling from 2 ms to 50 ms) as before.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::watch;

const WAIT: &str = "cr2|W|";
const FILLED: &str = "cr2|F|";

/// The channel of fill notices for `prefix`.
pub(crate) fn channel(prefix: &str) -> String {
    format!("{prefix}:__fill")
}

/// One fill notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Notice {
    /// A process waits for the fill of this key.
    Wait(String),
    /// The fill of this key ended.
    Filled(String),
}

impl Notice {
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            Notice::Wait(key) => format!("{WAIT}{key}"),
            Notice::Filled(key) => format!("{FILLED}{key}"),
        }
        .into_bytes()
    }

    /// Parses a notice; `None` for anything else (ignored: notices only save latency).
    pub(crate) fn decode(payload: &[u8]) -> Option<Notice> {
        let text = std::str::from_utf8(payload).ok()?;
        if let Some(key) = text.strip_prefix(WAIT) {
            Some(Notice::Wait(key.to_owned()))
        } else {
            text.strip_prefix(FILLED)
                .map(|key| Notice::Filled(key.to_owned()))
        }
    }
}

/// This process's side of fill notices: the fill leases it holds, which of them another
/// process waits for, and its own waits.
#[derive(Default)]
pub(crate) struct FillNotices {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Keys this process holds a fill lease on.
    held: HashSet<String>,
    /// Held keys another process said it waits for.
    wanted: HashSet<String>,
    /// Keys this process waits on: a channel signalled on `F`, and how many waits share it.
    waiting: HashMap<String, (watch::Sender<()>, usize)>,
}

impl FillNotices {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This process took the fill lease of `key`.
    pub(crate) fn hold(&self, key: &str) {
        self.state().held.insert(key.to_owned());
    }

    /// This process's fill of `key` ended; `true` when another process waits for it (then
    /// publish [`Notice::Filled`]).
    pub(crate) fn release(&self, key: &str) -> bool {
        let mut state = self.state();
        state.held.remove(key);
        state.wanted.remove(key)
    }

    /// Acts on a notice heard on the bus.
    pub(crate) fn heard(&self, notice: Notice) {
        let mut state = self.state();
        match notice {
            Notice::Wait(key) => {
                if state.held.contains(&key) {
                    state.wanted.insert(key);
                }
            }
            Notice::Filled(key) => {
                if let Some((tx, _)) = state.waiting.get(&key) {
                    tx.send_replace(());
                }
            }
        }
    }

    /// Starts waiting for notices about `key`: register before publishing [`Notice::Wait`],
    /// so no `F` that answers it is missed.
    pub(crate) fn wait(&self, key: &str) -> Waiting<'_> {
        let mut state = self.state();
        let (tx, count) = state
            .waiting
            .entry(key.to_owned())
            .or_insert_with(|| (watch::channel(()).0, 0));
        *count += 1;
        let rx = tx.subscribe();
        Waiting {
            notices: self,
            key: key.to_owned(),
            rx,
        }
    }
}

/// A wait for the fill of one key; dropping it stops listening.
pub(crate) struct Waiting<'a> {
    notices: &'a FillNotices,
    key: String,
    rx: watch::Receiver<()>,
}

impl Waiting<'_> {
    /// Resolves when a fill of the key ended since the last call (or since the wait began).
    pub(crate) async fn filled(&mut self) {
        // The sender lives while this wait does. Were it dropped, `changed` would fail at once,
        // every time: never resolve then, and let the caller's poll interval pace it.
        if self.rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut state = self.notices.state();
        if let Some((_, count)) = state.waiting.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                state.waiting.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[test]
    fn notices_round_trip_and_garbage_is_none() {
        for notice in [Notice::Wait("a|b".into()), Notice::Filled(String::new())] {
            assert_eq!(Notice::decode(&notice.encode()), Some(notice));
        }
        assert_eq!(Notice::decode(b"cr2|H|0000000000000001|1"), None);
        assert_eq!(Notice::decode(&[0xff, 0xfe]), None);
    }

    #[test]
    fn a_holder_is_asked_only_for_leases_it_holds() {
        let notices = FillNotices::default();
        notices.heard(Notice::Wait("k".into()));
        notices.hold("k");
        assert!(
            !notices.release("k"),
            "a wait heard before the lease is not kept"
        );
        notices.hold("k");
        notices.heard(Notice::Wait("k".into()));
        notices.heard(Notice::Wait("other".into()));
        assert!(notices.release("k"));
        assert!(!notices.release("k"), "answered once");
        assert!(!notices.release("other"));
    }

    #[tokio::test]
    async fn a_filled_notice_wakes_the_waits_on_its_key_only() {
        let notices = FillNotices::default();
        let mut a = notices.wait("k");
        let mut b = notices.wait("k");
        let mut other = notices.wait("o");
        assert!(a.filled().now_or_never().is_none());
        notices.heard(Notice::Filled("k".into()));
        a.filled().await;
        b.filled().await;
        assert!(other.filled().now_or_never().is_none());
        // One of two waits on a key ends: the other still listens, and is not woken by it.
        drop(a);
        assert!(notices.state().waiting.contains_key("k"));
        assert!(b.filled().now_or_never().is_none());
        notices.heard(Notice::Filled("k".into()));
        b.filled().await;
        drop(b);
        assert!(!notices.state().waiting.contains_key("k"));
        assert!(notices.state().waiting.contains_key("o"));
    }
}
