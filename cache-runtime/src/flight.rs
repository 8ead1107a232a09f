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
//! of everything) happened in this process since the flight began (an epoch `Stamp`
//! per flight): a caller that starts after an invalidation returned never receives a value
//! computed before it. It starts a new flight instead, which replaces the old one for later
//! callers (the old one's followers still get their leader's outcome).
//!
//! A caller that may join no running flight (its stamp is *solo*: its process cannot hear
//! other processes' invalidations now, so any running flight may predate one) still does not
//! run the body alone: it starts a *queued* flight behind the running one. Callers that arrive
//! while a flight is queued join it whatever their stamp, since its body has not begun: it
//! reads the source after every one of them arrived. The queued leader waits for the running
//! flight to end, then runs the body once for all of them. So while the bus is down a burst of
//! misses on a key costs two runs per process, not one per caller, and no caller is ever handed
//! a value read before it arrived.
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

/// A flight in the map: its id, the stamp it started under, its outcome channel, and whether
/// its body has yet to begin (then anyone may join it).
struct Running {
    id: u64,
    stamp: Stamp,
    rx: watch::Receiver<State>,
    queued: bool,
}

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
    /// Joins the flight for `key` if one is queued or runs under the same `stamp`, else starts
    /// one: queued behind the running flight when `stamp` is solo (call [`Leader::begin`]
    /// before running the body).
    pub(crate) fn join(&self, key: &str, stamp: Stamp) -> Role<'_> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let current = running.get(key);
        if let Some(flight) = current
            && (flight.queued || flight.stamp == stamp)
        {
            return Role::Follower(Follower {
                rx: flight.rx.clone(),
            });
        }
        let after = current
            .filter(|_| stamp.is_solo())
            .map(|flight| flight.rx.clone());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(State::Running);
        let queued = after.is_some();
        running.insert(
            key.to_owned(),
            Running {
                id,
                stamp,
                rx,
                queued,
            },
        );
        Role::Leader(Leader {
            flights: self,
            key: key.to_owned(),
            id,
            tx,
            after,
        })
    }

    /// How many flights are running (for tests and diagnostics).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.running.lock().unwrap().len()
    }

    fn remove(&self, key: &str, id: u64) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if running.get(key).is_some_and(|flight| flight.id == id) {
            running.remove(key);
        }
    }

    /// Closes a queued flight to new callers: its body is about to begin.
    fn close(&self, key: &str, id: u64) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(flight) = running.get_mut(key)
            && flight.id == id
        {
            flight.queued = false;
        }
    }
}

/// The caller that runs the body for a key.
pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    key: String,
    id: u64,
    tx: watch::Sender<State>,
    /// A queued flight's predecessor, to wait for before the body begins.
    after: Option<watch::Receiver<State>>,
}

impl Leader<'_> {
    /// Waits until the body may begin: at once, or for a queued flight when the flight ahead
    /// of it has ended (succeeded, failed or been abandoned); then closes the flight to new
    /// callers. `true` when it waited: the caller must then look the key up again (the flight
    /// ahead may have stored it, and an invalidation may have passed since the caller looked;
    /// every caller of this flight has arrived by then). Cancel safe: a leader dropped while
    /// waiting abandons its flight, and its followers elect a new leader.
    pub(crate) async fn begin(&mut self) -> bool {
        let Some(ahead) = self.after.as_mut() else {
            return false;
        };
        // `Err`: the flight ahead was abandoned (its sender dropped): it has ended too.
        let _ = ahead.wait_for(|s| !matches!(s, State::Running)).await;
        self.after = None;
        self.flights.close(&self.key, self.id);
        true
    }

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
    use futures_util::FutureExt;
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

    fn value(outcome: Outcome) -> u32 {
        match outcome {
            Outcome::Value(v) => *v.downcast_ref::<u32>().expect("a u32"),
            _ => panic!("expected a value"),
        }
    }

    #[tokio::test]
    async fn solo_callers_queue_behind_the_running_flight_and_share_one_later_run() {
        let flights = Flights::default();
        let running = leader(flights.join("k", S()));
        let mut queued = leader(flights.join("k", S().solo()));
        let solo = follower(flights.join("k", S().solo()));
        let plain = follower(flights.join("k", S()));
        // The queued body may not begin while the flight ahead of it runs.
        assert!(queued.begin().now_or_never().is_none());
        running.finish(Some(Arc::new(1u32)));
        assert!(queued.begin().await, "it waited: look again");
        // Begun: closed to newcomers, who queue behind it in turn.
        let mut next = leader(flights.join("k", S().solo()));
        queued.finish(Some(Arc::new(2u32)));
        assert_eq!(value(solo.outcome().await), 2);
        assert_eq!(value(plain.outcome().await), 2);
        next.begin().await;
        next.finish(Some(Arc::new(3u32)));
        assert_eq!(flights.len(), 0);
    }

    #[tokio::test]
    async fn a_solo_caller_alone_begins_at_once_and_joins_nothing_running() {
        let flights = Flights::default();
        let mut first = leader(flights.join("k", S().solo()));
        assert!(!first.begin().await, "nothing ahead: no wait");
        let second = leader(flights.join("k", S().solo()));
        first.finish(Some(Arc::new(1u32)));
        drop(second);
        assert_eq!(flights.len(), 0);
    }

    #[tokio::test]
    async fn a_queued_leader_dropped_while_waiting_abandons_its_followers() {
        let flights = Flights::default();
        let running = leader(flights.join("k", S()));
        let mut queued = leader(flights.join("k", S().solo()));
        let f = follower(flights.join("k", S().solo()));
        assert!(queued.begin().now_or_never().is_none());
        drop(queued);
        assert!(matches!(f.outcome().await, Outcome::Abandoned));
        drop(running);
        assert_eq!(flights.len(), 0);
    }
}
