//! The Redis store: single node ([`super::single`]) or Cluster (async cluster client).
//!
//! One multiplexed, auto-reconnecting connection set per cache instance, made once at
//! [`crate::Cache::new`] without waiting for the server (it connects in the background, so an
//! app starts even while Redis is down). Connections are made and driven on the library's
//! [background runtime](crate::background), so they outlive the runtime that built the cache. Every call has a timeout and goes through a
//! [circuit breaker](super::breaker); a failure is reported to the caller, which fails open.
//!
//! A lookup is one `MGET` of the entry and the generation keys (its namespace's, the cache's
//! and, for an HTTP response, its path's; see [`gens`]); on a Cluster, where these keys live
//! in different slots, one `GET` per key, sent concurrently (see `RedisStore::mget` for
//! why not the client's own split `MGET`).
//!
//! On a Cluster the client follows failovers and resharding itself (`MOVED`, `ASK`, slot map
//! refreshes); the connection is replaced when the client wedges (see [`cluster`]).
//! `tests/redis_cluster_ops.rs` kills a master under load and migrates slots under load.

use std::time::Duration;

use cluster::ClusterLink;
use redis::AsyncConnectionConfig;
use redis::aio::ConnectionLike;
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, Value};

use super::breaker::Breaker;
use super::client::{invalid_cluster, open_client, tcp_settings};
use super::incarnation::Incarnation;
use super::single::Single;
use crate::namespace::Gens;
use crate::{BackendError, BackendErrorKind, Config, Error};
use std::sync::Arc;

mod cluster;
mod gens;

pub(crate) use gens::new_generation;

/// One request's connection (a cheap clone).
#[derive(Clone)]
enum Conn {
    Single(Single),
    Cluster(ClusterConnection),
}

/// What the store holds: the single node's connection, or the Cluster's (replaced when it
/// wedges, see [`cluster`]).
enum Link {
    Single(Single),
    Cluster(Arc<ClusterLink>),
}

/// What one lookup read: the entry's bytes (if any) and the current generations.
pub(crate) struct Read {
    pub(crate) bytes: Option<Vec<u8>>,
    pub(crate) gens: Gens,
}

/// See the module docs.
pub(crate) struct RedisStore {
    link: Link,
    timeout: Duration,
    breaker: Breaker,
    gen_prefix: String,
    all_gen_key: String,
    /// Clients a pub/sub connection can be opened with (the node, or every cluster seed),
    /// with the TCP and TLS settings of the store's.
    pub(crate) pubsub_clients: Vec<redis::Client>,
    /// Restart and failover detection (single node).
    pub(crate) incarnation: Arc<Incarnation>,
}

impl RedisStore {
    /// Validates the URLs and sets up the connection without waiting for it.
    pub(crate) fn connect(config: &Config) -> Result<Self, Error> {
        let incarnation = Arc::new(Incarnation::new(&config.prefix));
        let (link, pubsub_clients) = match &config.backend {
            crate::config::Backend::Redis(url) => {
                let client = open_client(url, config)?;
                let pubsub = vec![client.clone()];
                let connection_config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(config.connect_timeout))
                    // Every call is already bounded by our own timeout; a second timer per
                    // request inside redis-rs costs throughput for nothing.
                    .set_response_timeout(None);
                let single = Single::new(
                    client,
                    connection_config,
                    config.connect_timeout,
                    incarnation.clone(),
                );
                (Link::Single(single), pubsub)
            }
            crate::config::Backend::Cluster(urls) => {
                let pubsub = urls
                    .iter()
                    .map(|url| open_client(url, config))
                    .collect::<Result<Vec<_>, _>>()?;
                let builder = ClusterClient::builder(urls.clone())
                    .tcp_settings(tcp_settings(&Default::default()));
                #[cfg(feature = "tls")]
                let builder = match urls.first().map(|url| super::client::tls_for(url, config)) {
                    Some(Ok(Some(tls))) => builder.certs(tls.certificates()),
                    _ => builder,
                };
                let client = builder.build().map_err(|e| invalid_cluster(urls, e))?;
                let cluster_config = ClusterConfig::new()
                    .set_connection_timeout(config.connect_timeout)
                    .set_response_timeout(config.timeout.saturating_mul(4));
                let link = ClusterLink::new(client, cluster_config);
                (Link::Cluster(Arc::new(link)), pubsub)
            }
            crate::config::Backend::Memory => {
                return Err(Error::InvalidConfig(crate::ConfigError::NotRedis));
            }
        };
        Ok(Self {
            link,
            timeout: config.timeout,
            breaker: Breaker::new(config.breaker_threshold, config.breaker_cooldown),
            gen_prefix: format!("{}:__gen:", config.prefix),
            all_gen_key: format!("{}:__gen", config.prefix),
            pubsub_clients,
            incarnation,
        })
    }

    /// Starts connecting in the background (the first call would connect anyway).
    pub(crate) fn warm_up(&self) {
        match &self.link {
            Link::Single(single) => single.start_connecting(),
            Link::Cluster(cluster) => {
                let mut conn = cluster.connection();
                crate::background::spawn(async move {
                    let _ = redis::cmd("PING").query_async::<Value>(&mut conn).await;
                });
            }
        }
    }

    /// Whether the circuit breaker is open (Redis is being skipped).
    pub(crate) fn circuit_open(&self) -> bool {
        self.breaker.is_open()
    }

    /// The key holding `namespace`'s generation.
    pub(crate) fn gen_key(&self, namespace: &str) -> String {
        format!("{}{namespace}", self.gen_prefix)
    }

    pub(super) fn connection(&self) -> impl ConnectionLike + Send + 'static {
        self.conn()
    }

    /// The connection for one request.
    fn conn(&self) -> Conn {
        match &self.link {
            Link::Single(single) => Conn::Single(single.clone()),
            Link::Cluster(cluster) => Conn::Cluster(cluster.connection()),
        }
    }

    async fn call<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, Error> {
        let mut conn = self.conn();
        self.guarded(false, cmd.query_async::<T>(&mut conn)).await
    }

    /// Runs one request under the timeout and the circuit breaker. A `probe` goes through an
    /// open breaker: recovery uses it to learn that Redis answers again.
    pub(super) async fn guarded<T>(
        &self,
        probe: bool,
        request: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, Error> {
        // Dropped unreported if this future is cancelled: that frees a probe slot it holds.
        let permit = if probe {
            self.breaker.bypass()
        } else {
            self.breaker.allow().ok_or(Error::CircuitOpen)?
        };
        let result = match tokio::time::timeout(self.timeout, request).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Error::Backend(BackendError::from_redis(&e))),
            Err(_) => Err(Error::Timeout(self.timeout)),
        };
        // A server error reply (e.g. WRONGTYPE) means Redis is up; only transport failures
        // and timeouts count towards opening the breaker.
        let up = match &result {
            Err(Error::Backend(e)) => e.kind() != BackendErrorKind::Connection,
            Err(_) => false,
            Ok(_) => true,
        };
        if up {
            permit.success();
        } else {
            permit.failure();
        }
        if let Link::Cluster(cluster) = &self.link {
            // Only a reply proves the connection works: a client-side error (e.g. redis-rs
            // failing to assemble a reply) does not.
            let answered = match &result {
                Ok(_) => true,
                Err(Error::Backend(e)) => e.kind() == BackendErrorKind::Server,
                Err(_) => false,
            };
            cluster.observe(answered);
        }
        result
    }

    /// Stores `bytes` under `key`, expiring after `ttl` (`SET key bytes PX ttl`).
    pub(crate) async fn write(
        &self,
        key: &str,
        bytes: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), Error> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(bytes);
        if let Some(ttl) = ttl {
            // Redis refuses expiry times past i64 milliseconds; beyond ~290 million years
            // the difference from "never" is moot, so such TTLs are stored without one.
            if ttl < MAX_TTL {
                cmd.arg("PX").arg(ttl.as_millis().max(1) as u64);
            }
        }
        self.call::<()>(&cmd).await
    }

    /// Applies an invalidation (deletes the entry, which also voids its fill lease, or the
    /// generation key) and, with `announce = Some((channel, message))`, publishes it,
    /// in one round trip (a pipeline; on a Cluster it goes to the node of the key it changes,
    /// and Cluster forwards the `PUBLISH` to every node). `probe`: see [`Self::guarded`].
    pub(crate) async fn invalidate(
        &self,
        target: Target<'_>,
        announce: Option<(&str, &[u8])>,
        probe: bool,
    ) -> Result<(), Error> {
        let mut pipe = redis::pipe();
        match target {
            Target::Key(key) => pipe.cmd("DEL").arg(key).ignore(),
            // Deleting a generation retires every entry written under it: no entry is ever
            // written under generation 0, and the next miss creates a new random one before
            // its body runs. `DEL` is also one of the writes Redis accepts when it is out of
            // memory (`maxmemory` with `noeviction`), unlike `SET`.
            Target::Namespace(ns) => pipe.cmd("DEL").arg(self.gen_key(ns)).ignore(),
            Target::All => pipe.cmd("DEL").arg(&self.all_gen_key).ignore(),
        };
        let mut conn = self.conn();
        let Some((channel, message)) = announce else {
            return self.guarded(probe, pipe.query_async::<()>(&mut conn)).await;
        };
        if matches!(self.link, Link::Cluster(_)) {
            // A Cluster pipeline cannot mix the key's slot with the channel's: delete first,
            // then announce (never the other way round: a process hearing the message must
            // find the entry gone).
            self.guarded(probe, pipe.query_async::<()>(&mut conn))
                .await?;
            let mut publish = redis::cmd("PUBLISH");
            publish.arg(channel).arg(message);
            return self
                .guarded(probe, publish.query_async::<()>(&mut conn))
                .await;
        }
        pipe.cmd("PUBLISH").arg(channel).arg(message).ignore();
        self.guarded(probe, pipe.query_async::<()>(&mut conn)).await
    }

    /// Publishes `payload` on `channel`.
    pub(crate) async fn publish(&self, channel: &str, payload: &[u8]) -> Result<(), Error> {
        self.call::<()>(redis::cmd("PUBLISH").arg(channel).arg(payload))
            .await
    }
}

/// The longest TTL sent to Redis as `PX`; longer ones are stored without expiry.
pub(super) const MAX_TTL: Duration = Duration::from_millis(1 << 53);

/// What an invalidation retires.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target<'a> {
    /// One entry.
    Key(&'a str),
    /// Every entry of a namespace (a new generation).
    Namespace(&'a str),
    /// Every entry (a new cache generation).
    All,
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> redis::RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}
