//! The cancellation harness: operations, their slots (key, old and new value, how they are
//! dropped), faults, and the round that seeds, faults, drops, recovers and checks.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use axum::extract::{Path, State};
use cache_runtime::{Cache, cached};
use cache_tests::{Db, RedisCluster, RedisServer, wait_until};

use super::{COOLDOWN, MAX_POLLS, RANDOM_DROPS, RANDOM_WITHIN_US, RECOVERY_BOUND};
use std::task::Poll;

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

/// The operations whose futures are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// A `#[cached]` call (global cache only).
    Cached,
    /// The generated `_invalidate` of that call (global cache only).
    CachedInvalidate,
    Get,
    Set,
    Delete,
    GetOrInsert,
    InvalidateNamespace,
    InvalidateAll,
    /// A request to the `#[cached(http)]` handler (global cache only).
    Handler,
    /// `http::invalidate_path` of that request's path (global cache only).
    HandlerInvalidate,
}

impl Op {
    /// Whether the operation retires the slot's old value once started.
    fn invalidates(self) -> bool {
        matches!(
            self,
            Op::CachedInvalidate
                | Op::Delete
                | Op::InvalidateNamespace
                | Op::InvalidateAll
                | Op::HandlerInvalidate
        )
    }

    /// Whether the operation goes through the global cache (a read returns the loader's value).
    fn global(self) -> bool {
        matches!(
            self,
            Op::Cached | Op::CachedInvalidate | Op::Handler | Op::HandlerInvalidate
        )
    }
}

/// The `#[cached(http)]` handler of the tiered harness: reads the slot's value from the state.
#[cached(http, namespace = "cancel_http")]
async fn cached_handler(Path(id): Path<u64>, State(db): State<Db>) -> String {
    db.get(id)
}

/// The handler's path for `id`.
fn handler_path(id: u64) -> String {
    format!("/h/{id}")
}

/// One request to [`cached_handler`] through an axum `Router` (the future a server drives,
/// dropped as a client disconnect drops it); returns the body.
async fn handler_get(db: &Db, id: u64) -> String {
    use tower_service::Service;
    let mut app = axum::Router::new()
        .route("/h/{id}", axum::routing::get(cached_handler))
        .with_state(db.clone());
    let request = axum::http::Request::get(handler_path(id))
        .body(axum::body::Body::empty())
        .unwrap();
    let response = app.call(request).await.unwrap();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(body.to_vec()).unwrap()
}

/// The `#[cached]` function of the tiered harness: reads the slot's value from `db`.
#[cached(namespace = "cancel_fn", skip(db))]
async fn cached_read(db: &Db, id: u64) -> String {
    db.get(id)
}

/// One dropped future: its operation, the key it works on and the values it may leave behind.
pub(crate) struct Slot {
    op: Op,
    ns: String,
    id: u64,
    /// Drop after this many polls; `None` = at a random moment.
    polls: Option<usize>,
}

impl Slot {
    fn old(&self) -> String {
        format!("old-{}-{}", self.ns, self.id)
    }

    fn new_value(&self) -> String {
        format!("new-{}-{}", self.ns, self.id)
    }

    /// The future of the operation.
    fn future<'a>(&'a self, cache: &'a Cache, db: &'a Db) -> BoxFut<'a> {
        let (ns, id) = (self.ns.as_str(), self.id);
        match self.op {
            Op::Cached => Box::pin(async move {
                cached_read(db, id).await;
            }),
            Op::CachedInvalidate => Box::pin(async move {
                let _ = cached_read_invalidate(db, id).await;
            }),
            Op::Handler => Box::pin(async move {
                handler_get(db, id).await;
            }),
            Op::HandlerInvalidate => Box::pin(async move {
                let _ =
                    cache_runtime::http::invalidate_path("cancel_http", &handler_path(id)).await;
            }),
            Op::Get => Box::pin(async move {
                cache.get::<String>(ns, &id).await;
            }),
            Op::Set => Box::pin(async move {
                let _ = cache.set(ns, &id, &self.new_value(), None).await;
            }),
            Op::Delete => Box::pin(async move {
                let _ = cache.delete::<String>(ns, &id).await;
            }),
            Op::GetOrInsert => Box::pin(async move {
                cache
                    .get_or_insert_with(ns, &id, None, async { self.new_value() })
                    .await;
            }),
            Op::InvalidateNamespace => Box::pin(async move {
                let _ = cache.invalidate_namespace(ns).await;
            }),
            Op::InvalidateAll => Box::pin(async move {
                let _ = cache.invalidate_all().await;
            }),
        }
    }

    /// Stores the old value (Redis healthy); true once it is readable.
    async fn seed(&self, cache: &Cache, db: &Db) -> bool {
        if self.op.global() {
            db.put(self.id, &self.old());
            self.read(cache, db).await;
            db.put(self.id, &self.new_value());
            return self.read(cache, db).await.as_ref() == Some(&self.old());
        }
        let _ = cache.set(&self.ns, &self.id, &self.old(), None).await;
        cache.get::<String>(&self.ns, &self.id).await == Some(self.old())
    }

    /// What a read returns now, through `cache`.
    async fn read(&self, cache: &Cache, db: &Db) -> Option<String> {
        match self.op {
            Op::Cached | Op::CachedInvalidate => Some(cached_read(db, self.id).await),
            Op::Handler | Op::HandlerInvalidate => Some(handler_get(db, self.id).await),
            _ => cache.get::<String>(&self.ns, &self.id).await,
        }
    }
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
