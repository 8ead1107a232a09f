//! [`Cache`]: one cache instance (the global one set by [`crate::init`] is one of these).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::memory::{Entry, MemoryStore};
use crate::backend::redis::RedisStore;
use crate::config::Backend;
use crate::envelope;
use crate::epoch::{KeyEpochs, KeyTicket};
use crate::flight::{Flights, Outcome, Role, Shared};
use crate::key;
use crate::namespace::{Generation, Gens, Namespace, Registry};
use crate::stats::{Counters, Stats};
use crate::tiered::{Bus, Pending};
use crate::warn::{now_ms, warn_limited};
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
    /// The memory backend, or the L1 of a tiered cache.
    pub(crate) local: Option<MemoryStore>,
    /// Redis, single node or Cluster.
    pub(crate) remote: Option<RedisStore>,
    pub(crate) flights: Flights,
    pub(crate) namespaces: Registry,
    pub(crate) all_gen: Generation,
    pub(crate) counters: Counters,
    /// The invalidation bus and pending invalidations (Redis backends).
    pub(crate) bus: Bus,
    /// Per-key invalidation epochs (see [`crate::epoch`]).
    pub(crate) key_epochs: KeyEpochs,
}

/// Where an entry came from and how old it is, for HTTP `Age` and `max-age`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryMeta {
    /// Unix ms when the value was computed.
    pub created_ms: u64,
    /// Unix ms when it expires; `None` when it has no TTL.
    pub expires_ms: Option<u64>,
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
    pub(crate) ttl: Option<Duration>,
    pub(crate) type_tag: [u8; 4],
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
                all_gen: if memory_only {
                    Generation::known(0)
                } else {
                    Generation::default()
                },
                bus: Bus::new(config.l1.is_some()),
                config,
                local,
                remote,
                flights: Flights::default(),
                namespaces: Registry::default(),
                counters: Counters::default(),
                key_epochs: KeyEpochs::default(),
            }),
        };
        if let Some(remote) = &cache.inner.remote {
            remote.warm_up();
        }
        crate::tiered::start(&cache);
        Ok(cache)
    }

    /// The configuration this cache was built with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub(crate) fn namespace(&self, name: &str) -> Arc<Namespace> {
        self.inner.namespaces.get(name, self.inner.remote.is_none())
    }

    /// Whether lookups may be answered from the in-process store.
    fn local_usable(&self) -> bool {
        self.inner.remote.is_none() || self.inner.bus.healthy()
    }

    // ----- lookups -------------------------------------------------------------------------

    /// The hit path for in-process entries (the memory backend, or a trusted L1 with no
    /// invalidation pending), kept small so a hit does not pay for the miss path's state.
    /// Counts the hit; `None` means "go through [`Cache::run`]".
    pub(crate) async fn local_hit<T: CacheValue>(&self, ctx: &Ctx<'_>, key: &str) -> Option<T> {
        let inner = &*self.inner;
        let local = inner.local.as_ref()?;
        if inner.bus.has_pending() || !self.local_usable() {
            return None;
        }
        let ns = ctx.namespace;
        let gens = Gens {
            namespace: ns.generation.get()?,
            all: inner.all_gen.get()?,
        };
        let entry = local.get(key).await?;
        if entry.gens != gens {
            return None;
        }
        let value = entry.value.downcast_ref::<T>()?.clone();
        Counters::bump(&ns.stats.hits);
        Some(value)
    }

    pub(crate) async fn lookup<T: CacheValue>(&self, ctx: &Ctx<'_>, key: &str) -> Lookup<T> {
        let inner = &*self.inner;
        if inner.bus.has_pending() && inner.bus.pending_covers(&ctx.namespace.name, key) {
            return Lookup::Bypass;
        }
        let ns = ctx.namespace;
        // In-process first: the memory backend, or a trusted L1.
        if let Some(local) = &inner.local
            && self.local_usable()
            && let (Some(namespace), Some(all)) = (ns.generation.get(), inner.all_gen.get())
        {
            let gens = Gens { namespace, all };
            if let Some(entry) = local.get(key).await
                && entry.gens == gens
                && let Some(value) = entry.value.downcast_ref::<T>()
            {
                let meta = EntryMeta {
                    created_ms: entry.created_ms,
                    expires_ms: (entry.expires_ms != 0).then_some(entry.expires_ms),
                };
                return Lookup::Hit(value.clone(), meta);
            }
            if inner.remote.is_none() {
                return Lookup::Miss(gens);
            }
        }
        let Some(remote) = &inner.remote else {
            // Memory backend whose generation is always known: unreachable in practice.
            return Lookup::Bypass;
        };
        let key_ticket = inner.key_epochs.ticket(key);
        let bus_fence = inner.bus.fence();
        let ns_ticket = ns.generation.ticket();
        let all_ticket = inner.all_gen.ticket();
        let read = match remote.read(key, &ns.name).await {
            Ok(read) => read,
            Err(e) => {
                self.backend_failed(ns, "lookup", &e);
                return Lookup::Bypass;
            }
        };
        ns.generation.learn(ns_ticket, read.gens.namespace);
        inner.all_gen.learn(all_ticket, read.gens.all);
        let Some(bytes) = read.bytes else {
            return Lookup::Miss(read.gens);
        };
        match self.open::<T>(ctx, &bytes, read.gens) {
            Ok(Some((value, meta))) => {
                // Tiered: fill the L1 only if the bus was trusted throughout the read (a message
                // missed meanwhile could concern this very value).
                if let Some(local) = &inner.local
                    && self.local_usable()
                    && inner.bus.fence() == bus_fence
                {
                    self.fill_local(ctx, key, &value, read.gens, meta, key_ticket)
                        .await;
                    if inner.bus.fence() != bus_fence {
                        local.remove(key).await;
                    }
                }
                Lookup::Hit(value, meta)
            }
            Ok(None) => Lookup::Miss(read.gens),
            Err(e) => {
                Counters::bump(&ns.stats.decode_errors);
                warn_limited!(key, error = %e, "undecodable cache entry; recomputing and overwriting it");
                Lookup::Miss(read.gens)
            }
        }
    }

    /// Decodes stored bytes; `Ok(None)` when the entry is valid but outdated.
    fn open<T: CacheValue>(
        &self,
        ctx: &Ctx<'_>,
        bytes: &[u8],
        gens: Gens,
    ) -> Result<Option<(T, EntryMeta)>, Error> {
        let env = envelope::open(bytes)?;
        if env.codec != self.inner.config.codec.id() {
            return Err(Error::BadEntry("entry written with another codec"));
        }
        if env.type_tag != ctx.type_tag {
            return Err(Error::BadEntry("entry holds another type"));
        }
        if env.gens != gens {
            return Ok(None);
        }
        let value = self.inner.config.codec.decode::<T>(env.payload)?;
        let meta = EntryMeta {
            created_ms: env.created_ms,
            expires_ms: (env.expires_ms != 0).then_some(env.expires_ms),
        };
        Ok(Some((value, meta)))
    }

    async fn fill_local<T: CacheValue>(
        &self,
        ctx: &Ctx<'_>,
        key: &str,
        value: &T,
        gens: Gens,
        meta: EntryMeta,
        ticket: KeyTicket,
    ) {
        let Some(local) = &self.inner.local else {
            return;
        };
        // An L1 entry never outlives its L2 entry.
        let l1_ttl = self.inner.config.l1.map(|l1| l1.ttl);
        let remaining = meta
            .expires_ms
            .map(|at| Duration::from_millis(at.saturating_sub(now_ms())));
        let ttl = match (l1_ttl, remaining) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if ttl.is_some_and(|t| t.is_zero()) {
            return;
        }
        let size = self.inner.config.codec.encoded_size(value).unwrap_or(0);
        let entry = Entry {
            value: Arc::new(value.clone()),
            gens,
            namespace: ctx.namespace.clone(),
            ttl,
            expires_at: crate::backend::memory::deadline(ttl),
            weight: local.weight(key.len() + size),
            created_ms: meta.created_ms,
            expires_ms: meta.expires_ms.unwrap_or(0),
        };
        // Skip the fill if the key was invalidated since the value was read: it could
        // resurrect what the invalidation removed.
        if self.inner.key_epochs.is_current(ticket) {
            local.insert(key.to_owned(), entry).await;
            if !self.inner.key_epochs.is_current(ticket) {
                local.remove(key).await;
            }
        }
    }

    // ----- stores --------------------------------------------------------------------------

    pub(crate) async fn store<T: CacheValue>(
        &self,
        ctx: &Ctx<'_>,
        key: &str,
        value: &T,
        shared: Option<Shared>,
        gens: Gens,
    ) -> Result<EntryMeta, Error> {
        let inner = &*self.inner;
        let ns = ctx.namespace;
        let created_ms = now_ms();
        let meta = EntryMeta {
            created_ms,
            expires_ms: ctx
                .ttl
                .map(|t| created_ms.saturating_add(t.as_millis().min(u64::MAX.into()) as u64)),
        };
        if inner.bus.has_pending() && inner.bus.pending_covers(&ns.name, key) {
            return Err(Error::InvalidationPending);
        }
        if let Some(remote) = &inner.remote {
            let gens = if gens.namespace == 0 || gens.all == 0 {
                let created = remote.create_generations(&ns.name, gens).await;
                // Whatever happened, generations remembered as 0 are outdated now.
                ns.generation.forget();
                inner.all_gen.forget();
                match created {
                    Ok(Some(created)) => created,
                    Ok(None) => return Err(Error::Superseded),
                    Err(e) => {
                        self.backend_failed(ns, "store", &e);
                        return Err(e);
                    }
                }
            } else {
                gens
            };
            let mut bytes = envelope::start(
                inner.config.codec.id(),
                ctx.type_tag,
                gens,
                created_ms,
                meta.expires_ms.unwrap_or(0),
                64,
            );
            if let Err(e) = inner.config.codec.encode_into(value, &mut bytes) {
                Counters::bump(&ns.stats.errors);
                warn_limited!(key, error = %e, "value cannot be encoded; not cached");
                return Err(e);
            }
            if bytes.len() > inner.config.max_value_bytes {
                return Err(self.oversized(ns, key, bytes.len()));
            }
            if let Err(e) = remote.write(key, &bytes, ctx.ttl).await {
                self.backend_failed(ns, "store", &e);
                return Err(e);
            }
            Counters::bump(&ns.stats.inserts);
            if inner.local.is_some() {
                if shared.is_none() {
                    // A manual write replaces what concurrent lookups of this process may have
                    // read from Redis just before: their L1 fills must not land after ours.
                    inner.key_epochs.bump(key);
                }
                crate::tiered::announce(self, Pending::Key(key.to_owned())).await;
                if self.local_usable() {
                    let ticket = inner.key_epochs.ticket(key);
                    self.fill_local(ctx, key, value, gens, meta, ticket).await;
                }
            }
            return Ok(meta);
        }
        if let Some(local) = &inner.local {
            let size = match inner.config.codec.encoded_size(value) {
                Ok(size) => size,
                Err(e) => {
                    Counters::bump(&ns.stats.errors);
                    warn_limited!(key, error = %e, "value cannot be encoded; not cached");
                    return Err(e);
                }
            };
            if size > inner.config.max_value_bytes {
                return Err(self.oversized(ns, key, size));
            }
            let entry = Entry {
                value: shared.unwrap_or_else(|| Arc::new(value.clone())),
                gens,
                namespace: ns.clone(),
                ttl: ctx.ttl,
                expires_at: crate::backend::memory::deadline(ctx.ttl),
                weight: local.weight(key.len() + size),
                created_ms,
                expires_ms: meta.expires_ms.unwrap_or(0),
            };
            local.insert(key.to_owned(), entry).await;
            Counters::bump(&ns.stats.inserts);
        }
        Ok(meta)
    }

    fn oversized(&self, ns: &Namespace, key: &str, size: usize) -> Error {
        let limit = self.inner.config.max_value_bytes;
        Counters::bump(&ns.stats.oversized);
        warn_limited!(key, size, limit, "value over max_value_bytes; not cached");
        Error::TooLarge {
            what: "value",
            size,
            limit,
        }
    }

    pub(crate) fn backend_failed(&self, ns: &Namespace, op: &'static str, e: &Error) {
        Counters::bump(&ns.stats.errors);
        warn_limited!(op, namespace = %ns.name, error = %e, "cache backend failed; serving without the cache");
    }

    // ----- the cached call -----------------------------------------------------------------

    /// Looks `key` up; on a miss runs `fut` once per key (single-flight) and stores its value.
    pub(crate) async fn run<M, O, Fut>(
        &self,
        ctx: &Ctx<'_>,
        key: &str,
        fut: Fut,
    ) -> (O, Option<EntryMeta>, bool)
    where
        M: Mode<O>,
        Fut: Future<Output = O>,
    {
        self.run_from::<M, O, Fut>(ctx, key, fut, None).await
    }

    /// [`Cache::run`], continuing from a `first` lookup the caller already made: `#[cached]`
    /// answers Redis hits itself and only enters (and boxes) this miss path on a miss.
    pub(crate) async fn run_from<M, O, Fut>(
        &self,
        ctx: &Ctx<'_>,
        key: &str,
        fut: Fut,
        mut first: Option<Lookup<M::Value>>,
    ) -> (O, Option<EntryMeta>, bool)
    where
        M: Mode<O>,
        Fut: Future<Output = O>,
    {
        let ns = ctx.namespace;
        let mut fut = Some(fut);
        loop {
            let looked = match first.take() {
                Some(looked) => looked,
                None => self.lookup::<M::Value>(ctx, key).await,
            };
            let gens = match looked {
                Lookup::Hit(value, meta) => {
                    Counters::bump(&ns.stats.hits);
                    return (M::from_value(value), Some(meta), true);
                }
                Lookup::Miss(gens) => gens,
                Lookup::Bypass => {
                    Counters::bump(&ns.stats.misses);
                    let out = fut.take().expect("body runs once").await;
                    return (out, None, false);
                }
            };
            match self.inner.flights.join(key) {
                Role::Leader(leader) => {
                    // In process, look again: a caller that missed just before the previous
                    // flight stored its value finds it now instead of running the body again.
                    let gens = match self.inner.remote {
                        None => match self.lookup::<M::Value>(ctx, key).await {
                            Lookup::Hit(value, meta) => {
                                leader.share(Arc::new(value.clone()));
                                Counters::bump(&ns.stats.hits);
                                return (M::from_value(value), Some(meta), true);
                            }
                            Lookup::Miss(gens) => gens,
                            Lookup::Bypass => gens,
                        },
                        Some(_) => gens,
                    };
                    Counters::bump(&ns.stats.misses);
                    // An invalidation of this key while the body runs means the body may have
                    // read old data: its result is returned but not stored.
                    let ticket = self.inner.key_epochs.ticket(key);
                    let out = fut.take().expect("body runs once").await;
                    let Some(value) = M::cacheable(&out) else {
                        leader.finish(None);
                        return (out, None, false);
                    };
                    let shared: Shared = Arc::new(value.clone());
                    // Followers get the value now; the flight ends when `leader` drops, after
                    // the store, so callers arriving meanwhile do not run the body again.
                    leader.share(shared.clone());
                    if !self.inner.key_epochs.is_current(ticket) {
                        return (out, None, false);
                    }
                    let meta = self.store(ctx, key, value, Some(shared), gens).await.ok();
                    if !self.inner.key_epochs.is_current(ticket)
                        && let Some(local) = &self.inner.local
                    {
                        local.remove(key).await;
                    }
                    return (out, meta, false);
                }
                Role::Follower(follower) => match follower.outcome().await {
                    Outcome::Value(shared) => {
                        if let Some(value) = shared.downcast_ref::<M::Value>() {
                            Counters::bump(&ns.stats.hits);
                            return (M::from_value(value.clone()), None, true);
                        }
                        Counters::bump(&ns.stats.misses);
                        return (fut.take().expect("body runs once").await, None, false);
                    }
                    Outcome::Failed => {
                        Counters::bump(&ns.stats.misses);
                        return (fut.take().expect("body runs once").await, None, false);
                    }
                    Outcome::Abandoned => continue,
                },
            }
        }
    }

    /// Runs `fut` without looking `key` up and stores its value over the entry (an HTTP client's
    /// `Cache-Control: no-cache`). On a backend failure the value is returned, not stored.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) async fn refresh<M, O, Fut>(
        &self,
        ctx: &Ctx<'_>,
        key: &str,
        fut: Fut,
    ) -> (O, Option<EntryMeta>)
    where
        M: Mode<O>,
        Fut: Future<Output = O>,
    {
        Counters::bump(&ctx.namespace.stats.misses);
        let gens = self.current_gens(ctx.namespace).await;
        let ticket = self.inner.key_epochs.ticket(key);
        let out = fut.await;
        let (Ok(gens), Some(value)) = (gens, M::cacheable(&out)) else {
            return (out, None);
        };
        if !self.inner.key_epochs.is_current(ticket) {
            return (out, None);
        }
        let meta = self.store(ctx, key, value, None, gens).await.ok();
        if !self.inner.key_epochs.is_current(ticket)
            && let Some(local) = &self.inner.local
        {
            local.remove(key).await;
        }
        (out, meta)
    }

    // ----- invalidation --------------------------------------------------------------------

    pub(crate) async fn invalidate_key_in(
        &self,
        ns: &Arc<Namespace>,
        key: &str,
    ) -> Result<(), Error> {
        Counters::bump(&ns.stats.invalidations);
        let epochs = &self.inner.key_epochs;
        epochs.bump(key);
        if let Some(local) = &self.inner.local {
            local.remove(key).await;
        }
        let result = match self.inner.remote {
            Some(_) => crate::tiered::apply(self, Pending::Key(key.to_owned())).await,
            None => Ok(()),
        };
        // Reads that overlapped the removal may have seen the old value: retire them too.
        epochs.bump(key);
        if let Some(local) = &self.inner.local {
            local.remove(key).await;
        }
        result
    }

    /// Drops every entry of `namespace`, in every process, in O(1).
    pub async fn invalidate_namespace(&self, namespace: &str) -> Result<(), Error> {
        let ns = self.namespace(namespace);
        Counters::bump(&ns.stats.invalidations);
        if self.inner.remote.is_none() {
            ns.generation.bump();
            return Ok(());
        }
        ns.generation.forget();
        let result = crate::tiered::apply(self, Pending::Namespace(namespace.to_owned())).await;
        // A lookup that overlapped may have learnt the old generation: forget it again.
        ns.generation.forget();
        result
    }

    /// Drops every entry of this cache, in every process.
    pub async fn invalidate_all(&self) -> Result<(), Error> {
        Counters::bump(&self.inner.counters.invalidations);
        if let Some(local) = &self.inner.local {
            local.clear();
        }
        if self.inner.remote.is_none() {
            self.inner.all_gen.bump();
            return Ok(());
        }
        self.inner.all_gen.forget();
        let result = crate::tiered::apply(self, Pending::All).await;
        self.inner.all_gen.forget();
        if let Some(local) = &self.inner.local {
            local.clear();
        }
        result
    }

    // ----- manual API ----------------------------------------------------------------------

    fn manual_key<T>(
        &self,
        namespace: &str,
        key: &(impl Serialize + ?Sized),
    ) -> Result<String, Error> {
        let head = key::manual_head(&self.inner.config.prefix, namespace, &key::type_tag::<T>());
        key::build(&head, key, self.inner.config.max_key_len)
    }

    /// The full backend key of the manual-API entry of type `T` under `(namespace, key)`, as
    /// [`Cache::get`] and [`Cache::set`] use it: handy to inspect an entry in `redis-cli`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::Error> {
    /// let cache = cache_runtime::Cache::new(cache_runtime::Config::memory()).await?;
    /// let key = cache.key_for::<String>("user", &42)?;
    /// assert!(key.starts_with("cache:user:") && key.ends_with(":42"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn key_for<T>(
        &self,
        namespace: &str,
        key: &(impl Serialize + ?Sized),
    ) -> Result<String, Error> {
        self.manual_key::<T>(namespace, key)
    }

    /// Whether Redis is being skipped after repeated failures (its circuit breaker is open),
    /// e.g. for a health endpoint. Always `false` for the memory backend.
    pub fn circuit_open(&self) -> bool {
        self.inner
            .remote
            .as_ref()
            .is_some_and(|remote| remote.circuit_open())
    }

    /// The value of type `T` stored under `(namespace, key)`, if any. Backend failures count
    /// as a miss (logged and counted, never an error).
    pub async fn get<T: CacheValue>(
        &self,
        namespace: &str,
        key: &(impl Serialize + ?Sized),
    ) -> Option<T> {
        let ns = self.namespace(namespace);
        let Ok(full_key) = self.manual_key::<T>(namespace, key) else {
            Counters::bump(&ns.stats.misses);
            return None;
        };
        let ctx = Ctx {
            namespace: &ns,
            ttl: None,
            type_tag: type_tag_bytes::<T>(),
        };
        match self.lookup::<T>(&ctx, &full_key).await {
            Lookup::Hit(value, _) => {
                Counters::bump(&ns.stats.hits);
                Some(value)
            }
            _ => {
                Counters::bump(&ns.stats.misses);
                None
            }
        }
    }

    /// Stores `value` under `(namespace, key)` for `ttl` (`None`: until evicted or
    /// invalidated). An error means it was not stored, and with Redis the previous value was
    /// deleted instead (or will be, once Redis answers: see [`crate::tiered`]); the caller may
    /// ignore it.
    pub async fn set<T: CacheValue>(
        &self,
        namespace: &str,
        key: &(impl Serialize + ?Sized),
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<(), Error> {
        let ns = self.namespace(namespace);
        let full_key = self.manual_key::<T>(namespace, key)?;
        let ctx = Ctx {
            namespace: &ns,
            ttl,
            type_tag: type_tag_bytes::<T>(),
        };
        let mut stored = Err(Error::Superseded);
        // An explicit value does not depend on what was read before, so a store superseded by
        // a concurrent generation change is simply retried under the new generations.
        for _ in 0..3 {
            stored = match self.current_gens(&ns).await {
                Ok(gens) => self.store(&ctx, &full_key, value, None, gens).await,
                Err(e) => Err(e),
            };
            if !matches!(stored, Err(Error::Superseded)) {
                break;
            }
        }
        if let Err(e) = &stored
            && self.inner.remote.is_some()
            && !matches!(e, Error::InvalidationPending)
        {
            // The value this call was to replace must not outlive it: delete it, everywhere
            // (kept pending and re-applied if Redis cannot be reached; see `tiered`).
            let _ = self.invalidate_key_in(&ns, &full_key).await;
        }
        stored.map(|_| ())
    }

    /// Deletes the `T` stored under `(namespace, key)`, in every process.
    pub async fn delete<T: CacheValue>(
        &self,
        namespace: &str,
        key: &(impl Serialize + ?Sized),
    ) -> Result<(), Error> {
        let ns = self.namespace(namespace);
        let full_key = self.manual_key::<T>(namespace, key)?;
        self.invalidate_key_in(&ns, &full_key).await
    }

    /// Returns the cached `T` under `(namespace, key)`, or runs `compute` once (single-flight),
    /// stores its result for `ttl` and returns it.
    pub async fn get_or_insert_with<T, Fut>(
        &self,
        namespace: &str,
        key: &(impl Serialize + ?Sized),
        ttl: Option<Duration>,
        compute: Fut,
    ) -> T
    where
        T: CacheValue,
        Fut: Future<Output = T>,
    {
        let ns = self.namespace(namespace);
        let Ok(full_key) = self.manual_key::<T>(namespace, key) else {
            Counters::bump(&ns.stats.misses);
            return compute.await;
        };
        let ctx = Ctx {
            namespace: &ns,
            ttl,
            type_tag: type_tag_bytes::<T>(),
        };
        self.run::<crate::__private::ValueMode, T, Fut>(&ctx, &full_key, compute)
            .await
            .0
    }

    /// Like [`Cache::get_or_insert_with`] for fallible computations: only `Ok` is stored.
    pub async fn get_or_try_insert_with<T, E, Fut>(
        &self,
        namespace: &str,
        key: &(impl Serialize + ?Sized),
        ttl: Option<Duration>,
        compute: Fut,
    ) -> Result<T, E>
    where
        T: CacheValue,
        Fut: Future<Output = Result<T, E>>,
    {
        let ns = self.namespace(namespace);
        let Ok(full_key) = self.manual_key::<T>(namespace, key) else {
            Counters::bump(&ns.stats.misses);
            return compute.await;
        };
        let ctx = Ctx {
            namespace: &ns,
            ttl,
            type_tag: type_tag_bytes::<T>(),
        };
        self.run::<crate::__private::ResultMode, Result<T, E>, Fut>(&ctx, &full_key, compute)
            .await
            .0
    }

    /// The generations a value stored now must carry.
    pub(crate) async fn current_gens(&self, ns: &Namespace) -> Result<Gens, Error> {
        // Remembered generations are only kept fresh by a working bus (tiered) or owned locally
        // (memory); plain Redis reads them, else a write after another process's
        // invalidation would carry the old generation and be ignored by every reader.
        let trusted = self.inner.remote.is_none() || self.bus_healthy();
        if trusted
            && let (Some(namespace), Some(all)) = (ns.generation.get(), self.inner.all_gen.get())
        {
            return Ok(Gens { namespace, all });
        }
        let remote = self.inner.remote.as_ref().ok_or(Error::NotConnected)?;
        let (t1, t2) = (ns.generation.ticket(), self.inner.all_gen.ticket());
        let gens = remote.read_gens(&remote.gen_key(&ns.name)).await?;
        ns.generation.learn(t1, gens.namespace);
        self.inner.all_gen.learn(t2, gens.all);
        Ok(gens)
    }

    // ----- statistics ----------------------------------------------------------------------

    /// Hits, misses, inserts, evictions and errors, in total and per namespace.
    pub async fn stats(&self) -> Stats {
        if let Some(local) = &self.inner.local {
            local.sync().await;
        }
        let namespaces = self.inner.namespaces.all();
        Stats::collect(
            &self.inner.counters,
            namespaces.iter().map(|ns| (&*ns.name, &ns.stats)),
        )
    }

    /// Entries held in process memory (the memory backend or the L1).
    pub async fn local_entry_count(&self) -> u64 {
        match &self.inner.local {
            Some(local) => {
                local.sync().await;
                local.entry_count()
            }
            None => 0,
        }
    }
}
