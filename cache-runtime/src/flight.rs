//! Single-flight: concurrent misses on one key run the body once (per process).
//!
//! The first caller to miss becomes the *leader* and runs the body; callers that miss the same
//! key while it runs become *followers* and wait for its outcome:
//!
//! | the leader's body ... | followers get |
//! |---|---|
//! | returns a cacheable value | a clone of that value (the body does not run again); callers arriving while it is being stored get it too |
//! | returns `Err` / `None` (not cached) | nothing shared: each follower runs the body itself, since errors are not `Clone` and may be transient |
//! | panics | the panic stays with the leader's caller; the followers elect a new leader among themselves, which runs the body once |
//! | is cancelled (its future dropped, its task aborted) | the same: a new leader runs the body once |
//!
//! A caller joins a running flight only if no invalidation of the key (or of its namespace, or
//! of everything) happened in this process since the flight began (an `epoch::Stamp`
//! per flight): a caller that starts after an invalidation returned never receives a value
//! computed before it. It starts a new flight instead, which replaces the old one for later
//! callers (the old one's followers still get their leader's outcome).
//!
//! So no follower ever waits on a flight that will never land. A follower waits as long as the
//! leader's body runs: a body that never finishes (and is never cancelled) holds its followers
//! too, so bound slow bodies with `tokio::time::timeout` where that matters. A follower that is
//! itself cancelled simply stops waiting.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

use crate::epoch::Stamp;

/// A type-erased value shared from a leader to its followers.
pub(crate) type Shared = std::sync::Arc<dyn Any + Send + Sync>;

#[derive(Clone)]
enum State {
    Running,
    Done(Shared),
    Failed,
}

/// What a follower learns about the flight it waited on.
pub(crate) enum Outcome {
    /// The leader produced this value.
    Value(Shared),
    /// The leader's result is not shareable: run the body yourself.
    Failed,
    /// The leader panicked or was cancelled: try to become the leader.
    Abandoned,
}

/// A running flight: its id, the stamp it started under, its outcome channel.
type Running = (u64, Stamp, watch::Receiver<State>);

/// The flights in progress, by key.
#[derive(Default)]
pub(crate) struct Flights {
    running: Mutex<HashMap<String, Running>>,
    next_id: AtomicU64,
}

/// A caller's role for one key.
pub(crate) enum Role<'a> {
    /// Run the body, then [`Leader::finish`].
    Leader(Leader<'a>),
    /// Wait with [`Follower::outcome`].
    Follower(Follower),
}

impl Flights {
    /// Joins the flight for `key` if one runs under the same `stamp`, else starts one.
    pub(crate) fn join(&self, key: &str, stamp: Stamp) -> Role<'_> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, started, rx)) = running.get(key)
            && *started == stamp
        {
            return Role::Follower(Follower { rx: rx.clone() });
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(State::Running);
        running.insert(key.to_owned(), (id, stamp, rx));
        Role::Leader(Leader {
            flights: self,
            key: key.to_owned(),
            id,
            tx,
        })
    }

    /// How many flights are running (for tests and diagnostics).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.running.lock().unwrap().len()
    }

    fn remove(&self, key: &str, id: u64) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if running.get(key).is_some_and(|(owner, _, _)| *owner == id) {
            running.remove(key);
        }
    }
}

/// The caller that runs the body for a key.
pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    key: String,
    id: u64,
    tx: watch::Sender<State>,
}

impl Leader<'_> {
    /// Hands `value` to every follower, those waiting now and those that join until the leader
    /// is dropped (the flight stays registered while the leader stores the value, so callers
    /// arriving meanwhile do not run the body again).
    pub(crate) fn share(&self, value: Shared) {
        self.tx.send_replace(State::Done(value));
    }

    /// Ends the flight: followers get `value`, or run the body themselves if it is `None`.
    pub(crate) fn finish(self, value: Option<Shared>) {
        self.flights.remove(&self.key, self.id);
        let state = match value {
            Some(v) => State::Done(v),
            None => State::Failed,
        };
        self.tx.send_replace(state);
        // Drop runs next: removing again is a no-op, and followers already have the outcome.
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        // Reached without `finish` or `share` when the body panicked or the caller was
        // cancelled: dropping the sender wakes the followers with `Outcome::Abandoned`. After
        // `share`, followers still read the shared value (it is checked before the closure).
        self.flights.remove(&self.key, self.id);
    }
}

/// A caller waiting for a leader.
pub(crate) struct Follower {
    rx: watch::Receiver<State>,
}

impl Follower {
    /// Waits for the leader's outcome.
    pub(crate) async fn outcome(mut self) -> Outcome {
        match self.rx.wait_for(|s| !matches!(s, State::Running)).await {
            Ok(state) => match &*state {
                State::Done(v) => Outcome::Value(v.clone()),
                _ => Outcome::Failed,
            },
            Err(_) => Outcome::Abandoned,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const S: fn() -> Stamp = || Stamp::new(crate::epoch::KeyEpochs::default().ticket("k"), 0, 0);

    fn leader(role: Role<'_>) -> Leader<'_> {
        match role {
            Role::Leader(l) => l,
            Role::Follower(_) => panic!("expected leader"),
        }
    }

    fn follower(role: Role<'_>) -> Follower {
        match role {
            Role::Follower(f) => f,
            Role::Leader(_) => panic!("expected follower"),
        }
    }

    #[tokio::test]
    async fn followers_get_the_leaders_value() {
        let flights = Flights::default();
        let l = leader(flights.join("k", S()));
        let f = follower(flights.join("k", S()));
        l.finish(Some(Arc::new(7u32)));
        match f.outcome().await {
            Outcome::Value(v) => assert_eq!(v.downcast_ref::<u32>(), Some(&7)),
            _ => panic!("expected a value"),
        }
        assert_eq!(flights.len(), 0);
    }

    #[tokio::test]
    async fn a_shared_value_reaches_followers_who_join_until_the_leader_is_dropped() {
        let flights = Flights::default();
        let l = leader(flights.join("k", S()));
        let early = follower(flights.join("k", S()));
        l.share(Arc::new(7u32));
        let late = follower(flights.join("k", S()));
        drop(l);
        for f in [early, late] {
            match f.outcome().await {
                Outcome::Value(v) => assert_eq!(v.downcast_ref::<u32>(), Some(&7)),
                _ => panic!("expected a value"),
            }
        }
        assert_eq!(flights.len(), 0);
        let _next = leader(flights.join("k", S()));
    }

    #[tokio::test]
    async fn a_dropped_leader_abandons_and_frees_the_key() {
        let flights = Flights::default();
        let l = leader(flights.join("k", S()));
        let f = follower(flights.join("k", S()));
        drop(l);
        assert!(matches!(f.outcome().await, Outcome::Abandoned));
        let _next = leader(flights.join("k", S()));
    }

    #[tokio::test]
    async fn a_caller_under_a_newer_stamp_starts_its_own_flight() {
        let flights = Flights::default();
        let old = leader(flights.join("k", S()));
        let newer = Stamp::new(crate::epoch::KeyEpochs::default().ticket("k"), 1, 0);
        let new = leader(flights.join("k", newer));
        let follower_of_new = follower(flights.join("k", newer));
        old.finish(Some(Arc::new(1u32)));
        new.finish(Some(Arc::new(2u32)));
        match follower_of_new.outcome().await {
            Outcome::Value(v) => assert_eq!(v.downcast_ref::<u32>(), Some(&2)),
            _ => panic!("expected the new flight's value"),
        }
    }

    #[tokio::test]
    async fn a_failed_leader_tells_followers_to_run_themselves() {
        let flights = Flights::default();
        let l = leader(flights.join("k", S()));
        let f = follower(flights.join("k", S()));
        l.finish(None);
        assert!(matches!(f.outcome().await, Outcome::Failed));
    }
}
