//! Configuration: which backend, and its limits.
//!
//! ```
//! use std::time::Duration;
//! use cache_runtime::{Config, L1};
//!
//! let embedded = Config::memory().max_entries(50_000).max_bytes(256 << 20);
//! let shared = Config::redis("redis://127.0.0.1:6379/0")
//!     .prefix("myapp")
//!     .timeout(Duration::from_millis(30));
//! let tiered = Config::redis("redis://127.0.0.1:6379")
//!     .with_l1(L1::new(10_000, Duration::from_secs(30)));
//! let cluster = Config::redis_cluster(["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]);
//! # let _ = (embedded, shared, tiered, cluster);
//! ```

use std::time::Duration;

use crate::codec::CodecKind;
use crate::key::DEFAULT_MAX_KEY_LEN;
use crate::redact::redact_url;

#[cfg(feature = "tls")]
pub(crate) mod tls;
mod validate;

#[cfg(feature = "tls")]
pub use tls::Tls;
pub use validate::ConfigError;

/// Where entries live.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Backend {
    Memory,
    Redis(String),
    Cluster(Vec<String>),
}

impl std::fmt::Debug for Backend {
    /// URLs with their passwords redacted ([`crate::redact_url`]).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory => f.write_str("Memory"),
            Self::Redis(url) => f.debug_tuple("Redis").field(&redact_url(url)).finish(),
            Self::Cluster(urls) => {
                let urls: Vec<String> = urls.iter().map(|u| redact_url(u)).collect();
                f.debug_tuple("Cluster").field(&urls).finish()
            }
        }
    }
}

/// The in-process L1 in front of Redis (the tiered cache).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L1 {
    pub(crate) max_entries: u64,
    pub(crate) ttl: Duration,
}

impl L1 {
    /// An L1 holding at most `max_entries` values, each for at most `ttl` (and never longer than
    /// its Redis entry). The TTL is also the staleness bound if the invalidation bus fails
    /// silently; see [`crate::tiered`].
    ///
    /// ```
    /// use std::time::Duration;
    /// let l1 = cache_runtime::L1::new(10_000, Duration::from_secs(30));
    /// let config = cache_runtime::Config::redis("redis://127.0.0.1:6379").with_l1(l1);
    /// ```
    #[must_use]
    pub fn new(max_entries: u64, ttl: Duration) -> Self {
        Self { max_entries, ttl }
    }
}

impl Default for L1 {
    /// 10,000 entries, 60 seconds.
    fn default() -> Self {
        Self::new(10_000, Duration::from_secs(60))
    }
}

/// The configuration of a [`crate::Cache`]: start from [`Config::memory`], [`Config::redis`] or
/// [`Config::redis_cluster`] and adjust with the builder methods.
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) backend: Backend,
    pub(crate) prefix: String,
    pub(crate) max_entries: u64,
    pub(crate) max_bytes: u64,
    pub(crate) l1: Option<L1>,
    pub(crate) codec: CodecKind,
    pub(crate) timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) max_value_bytes: usize,
    pub(crate) max_key_len: usize,
    pub(crate) breaker_threshold: u32,
    pub(crate) breaker_cooldown: Duration,
    pub(crate) bus_heartbeat: Duration,
    pub(crate) fill_lease: Duration,
    pub(crate) cross_process_single_flight: bool,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<tls::Tls>,
}

impl Config {
    fn with_backend(backend: Backend) -> Self {
        Self {
            backend,
            prefix: "cache".to_owned(),
            max_entries: 10_000,
            max_bytes: 64 << 20,
            l1: None,
            codec: CodecKind::default(),
            timeout: Duration::from_millis(50),
            connect_timeout: Duration::from_millis(500),
            max_value_bytes: 1 << 20,
            max_key_len: DEFAULT_MAX_KEY_LEN,
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(1),
            bus_heartbeat: Duration::from_millis(500),
            fill_lease: Duration::from_secs(5),
            cross_process_single_flight: true,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// The embedded in-process cache (moka): 10,000 entries and 64 MiB by default.
    ///
    /// ```
    /// let config = cache_runtime::Config::memory().max_entries(100_000);
    /// ```
    #[must_use]
    pub fn memory() -> Self {
        Self::with_backend(Backend::Memory)
    }

    /// One Redis server, e.g. `redis://:password@127.0.0.1:6379/2` (user, password and
    /// database number from the URL; `rediss://` with the `tls` feature).
    ///
    /// ```
    /// let config = cache_runtime::Config::redis("redis://127.0.0.1:6379/2").prefix("my_app");
    /// ```
    #[must_use]
    pub fn redis(url: impl Into<String>) -> Self {
        Self::with_backend(Backend::Redis(url.into()))
    }

    /// A Redis Cluster, given one or more of its nodes' URLs.
    ///
    /// ```
    /// let config = cache_runtime::Config::redis_cluster([
    ///     "redis://10.0.0.1:7000",
    ///     "redis://10.0.0.2:7000",
    /// ]);
    /// ```
    #[must_use]
    pub fn redis_cluster<I, S>(urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::with_backend(Backend::Cluster(urls.into_iter().map(Into::into).collect()))
    }

    /// The first part of every key (default `cache`), so several apps can share a Redis.
    /// Must be non-empty, contain no whitespace, and leave room in [`Config::max_key_len`]
    /// (its length + 64 at most).
    ///
    /// ```
    /// let config = cache_runtime::Config::memory().prefix("myapp");
    /// ```
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Memory backend: the most entries held (default 10,000). At least 1; any `u64`.
    ///
    /// ```
    /// let config = cache_runtime::Config::memory().max_entries(50_000);
    /// ```
    #[must_use]
    pub fn max_entries(mut self, n: u64) -> Self {
        self.max_entries = n;
        self
    }

    /// Memory backend and L1: the most bytes held, as measured by the codec (default 64 MiB).
    /// At least 1; any `u64`.
    ///
    /// ```
    /// let config = cache_runtime::Config::memory().max_bytes(256 << 20);
    /// ```
    #[must_use]
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = n;
        self
    }

    /// Redis backends: add an in-process L1 in front of Redis, kept consistent across
    /// processes by the invalidation bus (see [`crate::tiered`]). Its `max_entries` must be at
    /// least 1, its TTL longer than zero and at most 365 days.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cache_runtime::{Config, L1};
    /// let config = Config::redis("redis://127.0.0.1:6379")
    ///     .with_l1(L1::new(10_000, Duration::from_secs(30)));
    /// ```
    #[must_use]
    pub fn with_l1(mut self, l1: L1) -> Self {
        self.l1 = Some(l1);
        self
    }

    /// The codec of stored values (default [`CodecKind::Bincode`]).
    ///
    /// ```
    /// use cache_runtime::{CodecKind, Config};
    /// let config = Config::memory().codec(CodecKind::Bincode);
    /// ```
    #[must_use]
    pub fn codec(mut self, codec: CodecKind) -> Self {
        self.codec = codec;
        self
    }

    /// The most one Redis call may take before the cache gives up and fails open (default
    /// 50 ms). Longer than zero, at most one hour.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = cache_runtime::Config::redis("redis://127.0.0.1:6379")
    ///     .timeout(Duration::from_millis(30));
    /// ```
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The most one connection attempt may take (default 500 ms). Longer than zero, at most
    /// one hour.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = cache_runtime::Config::redis("redis://127.0.0.1:6379")
    ///     .connect_timeout(Duration::from_secs(2));
    /// ```
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Values whose encoding is larger are not stored (default 1 MiB). Any `usize` (0 stores
    /// nothing).
    ///
    /// ```
    /// let config = cache_runtime::Config::memory().max_value_bytes(4 << 20);
    /// ```
    #[must_use]
    pub fn max_value_bytes(mut self, n: usize) -> Self {
        self.max_value_bytes = n;
        self
    }

    /// Keys are hashed down to this length; a key that still does not fit is not cached
    /// (default 250 bytes). At least the prefix's length + 64; any larger `usize`.
    ///
    /// ```
    /// let config = cache_runtime::Config::memory().max_key_len(512);
    /// ```
    #[must_use]
    pub fn max_key_len(mut self, n: usize) -> Self {
        self.max_key_len = n;
        self
    }

    /// After `failures` consecutive Redis failures, skip Redis for `cooldown`, then probe with
    /// one call (default 5 failures, 1 second): a probe that succeeds closes the breaker, one
    /// that fails reopens it for another `cooldown`. A probe whose caller gives up before Redis
    /// answers (its future is dropped: a client disconnect, a timeout layer, `select!`) counts
    /// as neither: the breaker stays open, the cooldown is not restarted, and the next call is
    /// the probe. `failures` at least 1; `cooldown` at most one day.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = cache_runtime::Config::redis("redis://127.0.0.1:6379")
    ///     .circuit_breaker(3, Duration::from_millis(500));
    /// ```
    #[must_use]
    pub fn circuit_breaker(mut self, failures: u32, cooldown: Duration) -> Self {
        self.breaker_threshold = failures;
        self.breaker_cooldown = cooldown;
        self
    }

    /// Tiered: how often each process checks that the invalidation bus delivers (default
    /// 500 ms). The L1 is bypassed when a check has not come back within twice this. At least
    /// 1 ms, at most one hour.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = cache_runtime::Config::redis("redis://127.0.0.1:6379")
    ///     .bus_heartbeat(Duration::from_millis(200));
    /// ```
    #[must_use]
    pub fn bus_heartbeat(mut self, every: Duration) -> Self {
        self.bus_heartbeat = every;
        self
    }

    /// Redis: the term of a fill lease (default 5 s). A miss takes a lease on its key before
    /// its body runs and stores its value only while it still holds it; an invalidation voids
    /// it (so a value computed from data read before an invalidation is never stored), and
    /// concurrent misses in other processes wait for the holder's value instead of running the
    /// body. The holder renews the lease while its body runs; a holder that dies or stalls
    /// loses it after this term. It is also the longest a miss waits for another process's
    /// fill: a waiter that has waited this long takes the key over from the holder (counted in
    /// `lease_takeovers`), runs the body and stores its value, and the holder's late value is
    /// then not stored (raise the term for bodies that are slow on purpose). A refresh (`refresh_after`)
    /// or the recomputation of an expired entry (`stale`) holds its lease for at most two
    /// terms: a body that runs longer is taken to have hung, and another process may then
    /// recompute the entry (the first body's late value is still stored if nothing replaced
    /// the entry meanwhile). At least 10 ms, at most one day.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = cache_runtime::Config::redis("redis://127.0.0.1:6379")
    ///     .fill_lease(Duration::from_secs(2));
    /// ```
    #[must_use]
    pub fn fill_lease(mut self, term: Duration) -> Self {
        self.fill_lease = term;
        self
    }

    /// Redis: whether concurrent misses on one key in different processes run the body once in
    /// the whole cluster (on by default). The others wait for its value for at most
    /// [`Config::fill_lease`], woken when the holder's fill ends (it publishes a notice on
    /// `{prefix}:__fill` when, and only when, another process said it waits), and polling the
    /// entry meanwhile (every 2 ms doubling to 50 ms) in case a notice is lost. A holder that
    /// is cancelled gives its lease back at once, one that dies loses it after the term, and
    /// one still running when a waiter has waited the whole term is taken over (the waiter
    /// fills the key). The same holds for recomputing an expired entry (`stale`) and for
    /// refreshes (`refresh_after`): one per key in the cluster (a recomputation is taken over
    /// after two terms).
    ///
    /// While a process cannot hear the invalidation bus (Redis down or unreachable from it),
    /// it falls back to its own single-flight, with one change the consistency guarantee
    /// needs: a caller never joins a flight whose body began before it arrived (that body may
    /// have read the source before an invalidation this process could not hear). Callers that
    /// miss while a flight runs queue behind it and share one later run, which reads the source
    /// after all of them arrived: a burst of misses runs the body twice, not once per caller,
    /// and no value is stored. Coalescing across processes resumes when the bus is back.
    ///
    /// `false`: a miss that finds another process filling the key runs the body at once, without
    /// storing its value (the holder's value is stored); recomputations and refreshes run in
    /// every process that needs them. The per-process single-flight and the fill leases that
    /// keep invalidations consistent stay as they are.
    ///
    /// ```
    /// let config = cache_runtime::Config::redis("redis://127.0.0.1:6379")
    ///     .cross_process_single_flight(false);
    /// ```
    #[must_use]
    pub fn cross_process_single_flight(mut self, on: bool) -> Self {
        self.cross_process_single_flight = on;
        self
    }

    /// `rediss://` (feature `tls`): a private CA to trust and a client certificate for mutual
    /// TLS, for every connection (the store's, each Cluster node's, the bus'). Given with a
    /// URL that is not `rediss://`, [`crate::Cache::new`] fails with
    /// [`crate::Error::InvalidUrl`]. See [`Tls`].
    ///
    /// ```
    /// use cache_runtime::{Config, Tls};
    /// # fn main() -> std::io::Result<()> {
    /// # let dir = std::env::temp_dir();
    /// # std::fs::write(dir.join("ca.pem"), b"")?;
    /// let ca = std::fs::read(dir.join("ca.pem"))?;
    /// let config = Config::redis("rediss://127.0.0.1:6380").tls(Tls::new().ca_pem(ca));
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = Some(tls);
        self
    }
}
