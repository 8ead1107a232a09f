//! The cancellation harness: operations, their slots (key, old and new value, how they are
//! dropped), faults, and the round that seeds, faults, drops, recovers and checks. The
//! operations and slots are in `harness/slots.rs`; this module runs the rounds.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use cache_runtime::Cache;
use cache_tests::{Db, RedisCluster, RedisServer, wait_until};

use super::{COOLDOWN, MAX_POLLS, RANDOM_DROPS, RANDOM_WITHIN_US, RECOVERY_BOUND};
use std::task::Poll;

#[path = "harness/slots.rs"]
mod slots;

pub(crate) use slots::{Op, Slot};

type BoxFut<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Polls `fut` `polls` times, yielding to the runtime in between (so its I/O progresses), and
/// drops it unfinished after that. Returns its output if it finished first.
pub(crate) async fn poll_then_drop<F: Future>(fut: F, polls: usize) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    for i in 0..polls {
        if i > 0 {
            tokio::task::yield_now().await;
        }
        let polled = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
        if let Poll::Ready(out) = polled {
            return Some(out);
        }
    }
    None
}

/// A fault held while futures are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    Healthy,
    Stalled,
    Killed,
}

/// A small deterministic generator (xorshift64*), seeded per test.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// The Redis servers behind a harnessed cache: faulted by the harness (all nodes of a Cluster
/// at once), and read by an observer (another process's view).
pub(crate) enum Servers {
    /// The memory backend.
    None,
    /// Servers shared with other tests: read, never faulted (`backends.rs`).
    #[allow(dead_code)]
    Shared,
    Single(RedisServer),
    Cluster(RedisCluster),
}

/// One backend under test.
pub(crate) struct Harness {
    name: &'static str,
    cache: Cache,
    servers: Servers,
    db: Db,
    rng: Rng,
    round: u64,
}

impl Harness {
    /// A harness over `cache` (and the `server` it uses, to fault), seeded from `CANCEL_SEED`.
    pub(crate) fn new(name: &'static str, cache: Cache, servers: Servers) -> Self {
        Self {
            name,
            cache,
            servers,
            db: Db::default(),
            rng: Rng(seed()),
            round: 0,
        }
    }

    /// The slots of one round: each operation dropped after each of `variants` (a number of
    /// polls, or `None` for a random moment), each on its own namespace and key.
    fn slots(&mut self, ops: &[Op], variants: &[Option<usize>]) -> Vec<Slot> {
        self.round += 1;
        let mut slots = Vec::new();
        for &op in ops {
            for &polls in variants {
                let n = slots.len() as u64;
                slots.push(Slot {
                    op,
                    ns: format!("{}-r{}-s{n}", self.name, self.round),
                    id: self.round * 1000 + n,
                    polls,
                });
            }
        }
        slots
    }

    fn inject(&mut self, fault: Fault) {
        match (fault, &mut self.servers) {
            (Fault::Healthy, _) => {}
            (Fault::Stalled, Servers::Single(server)) => server.pause(),
            (Fault::Killed, Servers::Single(server)) => server.kill(),
            (Fault::Stalled, Servers::Cluster(cluster)) => {
                cluster.nodes.iter().for_each(RedisServer::pause)
            }
            (Fault::Killed, Servers::Cluster(cluster)) => {
                cluster.nodes.iter_mut().for_each(RedisServer::kill)
            }
            _ => panic!("faults need servers of the test's own"),
        }
    }

    fn restore(&mut self, fault: Fault) {
        match (fault, &mut self.servers) {
            (Fault::Stalled, Servers::Single(server)) => server.resume(),
            (Fault::Killed, Servers::Single(server)) => server.restart(),
            (Fault::Stalled, Servers::Cluster(cluster)) => {
                cluster.nodes.iter().for_each(RedisServer::resume)
            }
            (Fault::Killed, Servers::Cluster(cluster)) => cluster.restart(),
            _ => {}
        }
    }

    /// Waits until the cache serves hits again and has re-applied its pending invalidations.
    async fn wait_recovered(&self, what: &str) {
        let (cache, round) = (&self.cache, self.round);
        let value = format!("sentinel-{round}");
        let what = format!("{}: {what}: hits again, nothing pending", self.name);
        wait_until(&what, COOLDOWN + RECOVERY_BOUND, async || {
            let _ = cache.set("sentinel", &round, &value, None).await;
            cache.get::<String>("sentinel", &round).await.as_ref() == Some(&value)
                && cache.pending_invalidations() == 0
        })
        .await;
    }

    /// One round: seed, fault, drop every slot's future, end the fault, recover, check.
    async fn round(&mut self, fault: Fault, ops: &[Op], variants: &[Option<usize>]) -> Vec<String> {
        let slots = self.slots(ops, variants);
        self.wait_recovered("before the round").await;
        for slot in &slots {
            let (cache, db) = (&self.cache, &self.db);
            wait_until("seeded", Duration::from_secs(5), async || {
                slot.seed(cache, db).await
            })
            .await;
        }
        self.inject(fault);
        for slot in &slots {
            let fut = slot.future(&self.cache, &self.db);
            match slot.polls {
                Some(polls) => drop(poll_then_drop(fut, polls).await),
                None => {
                    let moment = Duration::from_micros(self.rng.below(RANDOM_WITHIN_US));
                    drop(tokio::time::timeout(moment, fut).await);
                }
            }
        }
        self.restore(fault);
        self.wait_recovered(&format!("after {fault:?}")).await;
        self.check(fault, &slots).await
    }

    /// Another process's view of Redis: a fresh cache of the same config (its L1, if any, is
    /// empty), once it reads the sentinel.
    async fn observer(&self) -> Cache {
        let observer = Cache::new(self.cache.config().clone()).await.unwrap();
        let (round, value) = (self.round, format!("sentinel-{}", self.round));
        wait_until("the observer reads Redis", RECOVERY_BOUND, async || {
            observer.get::<String>("sentinel", &round).await.as_ref() == Some(&value)
        })
        .await;
        observer
    }

    /// Reads every slot, through this cache and a fresh one (another process's view of Redis),
    /// and lists the values that must not be there.
    async fn check(&self, fault: Fault, slots: &[Slot]) -> Vec<String> {
        let all_invalidated = slots.iter().any(|s| s.op == Op::InvalidateAll);
        let observer = match &self.servers {
            Servers::None => None,
            _ => Some(self.observer().await),
        };
        let mut bad = Vec::new();
        for slot in slots {
            let forbidden_old = slot.op.invalidates() || all_invalidated;
            let allowed = |v: &Option<String>| match v {
                None => !slot.op.global(),
                Some(v) if *v == slot.old() => !forbidden_old,
                Some(v) => *v == slot.new_value() && slot.op != Op::Get,
            };
            let mine = slot.read(&self.cache, &self.db).await;
            if !allowed(&mine) {
                bad.push(format!(
                    "{} {fault:?} {:?} dropped after {:?} polls: this cache read {mine:?}",
                    self.name, slot.op, slot.polls
                ));
            }
            if let Some(observer) = &observer
                && !slot.op.global()
            {
                let theirs = observer.get::<String>(&slot.ns, &slot.id).await;
                if !allowed(&theirs) {
                    bad.push(format!(
                        "{} {fault:?} {:?} dropped after {:?} polls: another process read {theirs:?}",
                        self.name, slot.op, slot.polls
                    ));
                }
            }
        }
        bad
    }

    /// Every fault: `ops` in one round, dropped after 1..=MAX_POLLS polls and at RANDOM_DROPS
    /// random moments; then `invalidate_all` in rounds of its own (it retires every slot's
    /// old value), each with a dropped `get` whose old value witnesses it.
    pub(crate) async fn run(mut self, faults: &[Fault], ops: &[Op]) {
        let variants: Vec<Option<usize>> = (1..=MAX_POLLS)
            .map(Some)
            .chain((0..RANDOM_DROPS).map(|_| None))
            .collect();
        let mut bad = Vec::new();
        for &fault in faults {
            bad.extend(self.round(fault, ops, &variants).await);
            for variant in [Some(1), Some(2), Some(3), None] {
                let ops = [Op::Get, Op::InvalidateAll];
                bad.extend(self.round(fault, &ops, &[variant]).await);
            }
        }
        assert!(
            bad.is_empty(),
            "{} violations:\n{}",
            bad.len(),
            bad.join("\n")
        );
    }
}

fn seed() -> u64 {
    let seed = std::env::var("CANCEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_cafe_f00d_u64);
    eprintln!("CANCEL_SEED={seed}");
    seed | 1
}
