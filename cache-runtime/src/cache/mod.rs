//! [`Cache`]: one cache instance (the global one set by [`crate::init`] is one of these).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::memory::MemoryStore;
use crate::backend::redis::RedisStore;
use crate::config::Backend;
use crate::flight::Flights;
use crate::local_state::LocalState;
use crate::namespace::{Gens, Namespace};
use crate::stats::Counters;
use crate::tiered::Bus;
use crate::{Config, Error};

/// What a cached value must be: cloned out on a hit, serialized for Redis and for weighing.
///
/// Implemented for every type with these bounds.
pub trait CacheValue: Clone + Serialize + DeserializeOwned + Send + Sync + 'static {}
impl<T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static> CacheValue for T {}

/// A cache instance: the memory backend, Redis, Redis Cluster, or Redis with an L1.
///
/// Cheap to clone (an `Arc`). Most apps use the global instance through [`crate::init`] and
/// `#[cached]`; tests and apps that need several caches build their own with [`Cache::new`].
///
/// ```
/// use std::time::Duration;
/// use cache_runtime::{Cache, Config};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_runtime::Error> {
/// let cache = Cache::new(Config::memory()).await?;
/// cache.set("user", &42, &"Ada".to_string(), Some(Duration::from_secs(60))).await?;
/// assert_eq!(cache.get::<String>("user", &42).await.as_deref(), Some("Ada"));
/// cache.delete::<String>("user", &42).await?;
/// assert_eq!(cache.get::<String>("user", &42).await, None);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Cache {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("backend", &self.inner.config.backend)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) config: Config,
    /// The L1 or memory store, generations, key epochs and fence: what the bus acts on.
    pub(crate) state: LocalState,
    /// Redis, single node or Cluster.
    pub(crate) remote: Option<RedisStore>,
    pub(crate) flights: Flights,
    pub(crate) counters: Counters,
    /// The invalidation bus and pending invalidations (Redis backends).
    pub(crate) bus: Bus,
    /// Fill leases held, renewed in the background (see `fill.rs`).
    pub(crate) renewals: lease_guard::Renewals,
    /// Cross-process wake-ups of misses waiting on a fill lease (see `fill_notice.rs`).
    pub(crate) notices: crate::fill_notice::FillNotices,
    /// Stale back-off and running refreshes (see [`resil`]).
    pub(crate) resil: resil::State,
}

/// What a call answers: the output, the entry's meta when it came from a stored entry, and
/// whether it was answered without running the body (a hit, or a shared or stale value).
pub(crate) type Answer<O> = (O, Option<EntryMeta>, bool);

/// Where an entry came from and how old it is, for HTTP `Age` and `max-age`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntryMeta {
    /// Unix ms when the value was computed.
    pub(crate) created_ms: u64,
    /// Unix ms when it expires; `None` when it has no TTL.
    pub(crate) expires_ms: Option<u64>,
}

/// The outcome of a lookup.
pub(crate) enum Lookup<T> {
    Hit(T, EntryMeta),
    /// Not found or not valid; store under these generations.
    Miss(Gens),
    /// The cache cannot be used for this key now (backend failing, invalidation pending).
    Bypass,
}

/// What a cached call needs to know about its site.
pub(crate) struct Ctx<'a> {
    pub(crate) namespace: &'a Arc<Namespace>,
    /// An HTTP response's path namespace: a third generation the entry depends on, so that
    /// invalidating it drops every variant of the path (see [`crate::http::invalidate_path`]).
    pub(crate) path: Option<&'a Arc<Namespace>>,
    pub(crate) ttl: Option<Duration>,
    pub(crate) type_tag: [u8; 4],
}

impl Ctx<'_> {
    /// Whether the path generation of an HTTP entry does not exist yet in Redis.
    pub(crate) fn missing_path_gen(&self, gens: Gens) -> bool {
        self.path.is_some() && gens.path == 0
    }

    /// Forgets the namespace's, the path's and the cache's remembered generations.
    pub(crate) fn forget_generations(&self, all: &crate::namespace::Generation) {
        self.namespace.generation.forget();
        if let Some(p) = self.path {
            p.generation.forget();
        }
        all.forget();
    }
}

/// How a function's output maps to the cached value: see [`crate::__private`].
#[diagnostic::on_unimplemented(
    message = "`{O}` cannot be cached: a cached value must be `Clone + serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static`",
    label = "the output of this #[cached] function",
    note = "derive `Clone, serde::Serialize, serde::Deserialize` for the value type; for `Result<T, E>` and `Option<T>` only `T` needs them (write the output as `Result<..>` / `Option<..>`, not through a type alias)"
)]
pub trait Mode<O> {
    /// The cached value type.
    type Value: CacheValue;
    /// The value to cache, if this output is cacheable.
    fn cacheable(output: &O) -> Option<&Self::Value>;
    /// The output rebuilt from a cached value.
    fn from_value(value: Self::Value) -> O;
    /// Whether an output is a failure, which `stale` answers with the stale value: by default
    /// every output that is not cacheable (an HTTP handler's only 5xx responses).
    fn failed(output: &O) -> bool {
        Self::cacheable(output).is_none()
    }
}

pub(crate) fn type_tag_bytes<T: ?Sized>() -> [u8; 4] {
    let hash = blake3::hash(std::any::type_name::<T>().as_bytes());
    let mut tag = [0u8; 4];
    tag.copy_from_slice(&hash.as_bytes()[..4]);
    tag
}

impl Cache {
    /// Builds a cache. With Redis this validates the URL and returns at once: the connection
    /// is made in the background, and until it is up the cache fails open.
    ///
    /// # Cancel safety
    /// Cancel safe: it completes at its first poll (it waits on no I/O). A future dropped
    /// before it was polled builds nothing and starts no background task.
    pub async fn new(config: Config) -> Result<Cache, Error> {
        config.validate()?;
        let remote = match &config.backend {
            Backend::Memory => None,
            _ => Some(RedisStore::connect(&config)?),
        };
        let local = match (&config.backend, config.l1) {
            (Backend::Memory, _) => Some(MemoryStore::new(config.max_entries, config.max_bytes)),
            (_, Some(l1)) => Some(MemoryStore::new(l1.max_entries, config.max_bytes)),
            (_, None) => None,
        };
        let memory_only = remote.is_none();
        let cache = Cache {
            inner: Arc::new(Inner {
                state: LocalState::new(local, memory_only),
                bus: Bus::new(),
                config,
                remote,
                flights: Flights::default(),
                counters: Counters::default(),
                renewals: lease_guard::Renewals::default(),
                notices: Default::default(),
                resil: resil::State::default(),
            }),
        };
        if let Some(remote) = &cache.inner.remote {
            // Restarted or failed over: nothing remembered from the old server holds.
            let weak = Arc::downgrade(&cache.inner);
            remote.incarnation.on_change(Box::new(move || {
                if let Some(inner) = weak.upgrade() {
                    inner.state.distrust();
                }
            }));
            remote.warm_up();
        }
        crate::tiered::start(&cache.inner);
        Ok(cache)
    }

    /// The configuration this cache was built with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub(crate) fn namespace(&self, name: &str) -> Arc<Namespace> {
        self.inner
            .state
            .namespaces
            .get(name, self.inner.remote.is_none())
    }

    /// What a single-flight for `key` records, see [`crate::epoch::Stamp`].
    /// On Redis, a process whose bus is down may have missed another process's invalidation:
    /// its callers then join no running flight (they queue, see [`crate::flight`]).
    pub(crate) fn stamp(&self, ctx: &Ctx<'_>, key: &str) -> crate::epoch::Stamp {
        let stamp = crate::epoch::Stamp::new(
            self.inner.state.key_epochs.ticket(key),
            ctx.namespace.generation.ticket(),
            self.inner.state.all_gen.ticket(),
        )
        .with_path(ctx.path.map_or(0, |p| p.generation.ticket()));
        if self.inner.remote.is_some() && !self.inner.bus.healthy() {
            stamp.solo()
        } else {
            stamp
        }
    }

    /// Whether lookups may be answered from the in-process store.
    fn local_usable(&self) -> bool {
        self.inner.remote.is_none() || self.inner.bus.healthy()
    }
}

mod call;
mod fill;
mod health;
mod invalidate;
mod lease_guard;
mod lookup;
mod manual;
mod refresh;
#[cfg(feature = "axum")]
pub(crate) use refresh::Read as RefreshFrom;
pub(crate) use refresh::Site as DetachedSite;
mod fill_options;
#[cfg(feature = "axum")]
mod revalidate;
pub use fill_options::FillOptions;
pub use resil::BACKOFF;
#[cfg(feature = "axum")]
pub(crate) use revalidate::Revalidated;
pub(crate) mod resil;
mod stats;
mod store;
