//! The Redis store: single node ([`super::single`]) or Cluster (async cluster client).
//!
//! One multiplexed, auto-reconnecting connection set per cache instance, made once at
//! [`crate::Cache::new`] without waiting for the server (it connects in the background, so an
//! app starts even while Redis is down). Connections are made and driven on the library's
//! [background runtime](crate::background), so they outlive the runtime that built the cache. Every call has a timeout and goes through a
//! [circuit breaker](super::breaker); a failure is reported to the caller, which fails open.
//!
//! A lookup is one `MGET` of the entry and the two generation keys (its namespace's and the
//! cache's); on a Cluster, where these keys live in different slots, the client splits the
//! `MGET` per node and sends the parts concurrently.

use std::hash::{BuildHasher, RandomState};
use std::io::Write as _;
use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::aio::ConnectionLike;
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, RedisWrite, ToRedisArgs, Value};

use super::breaker::Breaker;
use super::client::{invalid_url, open_client, tcp_settings};
use super::incarnation::Incarnation;
use super::single::Single;
use crate::namespace::Gens;
use crate::{Config, Error};
use std::sync::Arc;

#[derive(Clone)]
enum Conn {
    Single(Single),
    Cluster(ClusterConnection),
}

/// What one lookup read: the entry's bytes (if any) and the current generations.
pub(crate) struct Read {
    pub(crate) bytes: Option<Vec<u8>>,
    pub(crate) gens: Gens,
}

/// See the module docs.
pub(crate) struct RedisStore {
    conn: Conn,
    timeout: Duration,
    breaker: Breaker,
    gen_prefix: String,
    all_gen_key: String,
    /// URLs a pub/sub connection can be opened to (the node, or every cluster seed).
    pub(crate) pubsub_urls: Vec<String>,
    /// Restart and failover detection (single node).
    pub(crate) incarnation: Arc<Incarnation>,
}

impl RedisStore {
    /// Validates the URLs and sets up the connection without waiting for it.
    pub(crate) fn connect(config: &Config) -> Result<Self, Error> {
        let incarnation = Arc::new(Incarnation::new(&config.prefix));
        let (conn, pubsub_urls) = match &config.backend {
            crate::config::Backend::Redis(url) => {
                let client = open_client(url)?;
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
                (Conn::Single(single), vec![url.clone()])
            }
            crate::config::Backend::Cluster(urls) => {
                for url in urls {
                    open_client(url)?;
                }
                let client = ClusterClient::builder(urls.clone())
                    .tcp_settings(tcp_settings(&Default::default()))
                    .build()
                    .map_err(|e| invalid_url(&urls.join(","), e))?;
                let cluster_config = ClusterConfig::new()
                    .set_connection_timeout(config.connect_timeout)
                    .set_response_timeout(config.timeout * 4);
                // Its driver task (which also makes every node connection) must live on the
                // background runtime, not on the caller's.
                let conn = crate::background::enter(|| {
                    client.get_pending_async_connection_with_config(cluster_config)
                });
                (Conn::Cluster(conn), urls.clone())
            }
            crate::config::Backend::Memory => {
                return Err(Error::InvalidConfig("not a Redis configuration".into()));
            }
        };
        Ok(Self {
            conn,
            timeout: config.timeout,
            breaker: Breaker::new(config.breaker_threshold, config.breaker_cooldown),
            gen_prefix: format!("{}:__gen:", config.prefix),
            all_gen_key: format!("{}:__gen", config.prefix),
            pubsub_urls,
            incarnation,
        })
    }

    /// Starts connecting in the background (the first call would connect anyway).
    pub(crate) fn warm_up(&self) {
        match &self.conn {
            Conn::Single(single) => single.start_connecting(),
            Conn::Cluster(cluster) => {
                let mut conn = cluster.clone();
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
        self.conn.clone()
    }

    async fn call<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, Error> {
        let mut conn = self.conn.clone();
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
            Ok(Err(e)) => Err(Error::Redis(e)),
            Err(_) => Err(Error::Timeout(self.timeout)),
        };
        match &result {
            // A server error reply (e.g. WRONGTYPE) means Redis is up; only transport
            // failures and timeouts count towards opening the breaker.
            Err(Error::Redis(e))
                if !(e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_timeout()
                    || e.is_unrecoverable_error()) =>
            {
                permit.success()
            }
            Err(_) => permit.failure(),
            Ok(_) => permit.success(),
        }
        result
    }

    /// Reads an entry and the generations it must match (its namespace's and the cache's), in
    /// one round trip. The hit path: the command is built in one pre-sized buffer and the reply
    /// taken apart without intermediate collections.
    /// `path`: an HTTP response's path namespace, whose generation is read too.
    pub(crate) async fn read(
        &self,
        key: &str,
        namespace: &str,
        path: Option<&str>,
    ) -> Result<Read, Error> {
        let gen_key = GenKey(&self.gen_prefix, namespace);
        let path_key = path.map(|p| GenKey(&self.gen_prefix, p));
        let data = 4
            + key.len()
            + gen_key.len()
            + self.all_gen_key.len()
            + path_key.as_ref().map_or(0, GenKey::len);
        let mut cmd = Cmd::with_capacity(5, data);
        cmd.arg("MGET").arg(key).arg(gen_key).arg(&self.all_gen_key);
        if let Some(path_key) = path_key {
            cmd.arg(path_key);
        }
        let Value::Array(values) = self.call::<Value>(&cmd).await? else {
            return Err(Error::BadEntry(
                "MGET answered with something else than an array",
            ));
        };
        let expected = 3 + usize::from(path.is_some());
        if values.len() != expected {
            return Err(Error::BadEntry(
                "MGET answered with the wrong number of values",
            ));
        }
        let mut values = values.into_iter();
        let mut next = || bulk(values.next().unwrap_or(Value::Nil));
        Ok(Read {
            bytes: next()?,
            gens: Gens {
                namespace: parse_gen(next()?)?,
                all: parse_gen(next()?)?,
                path: if path.is_some() {
                    parse_gen(next()?)?
                } else {
                    0
                },
            },
        })
    }

    /// Reads only the generations.
    pub(crate) async fn read_gens(
        &self,
        gen_key: &str,
        path_key: Option<&str>,
    ) -> Result<Gens, Error> {
        let mut cmd = redis::cmd("MGET");
        cmd.arg(gen_key).arg(&self.all_gen_key);
        if let Some(path_key) = path_key {
            cmd.arg(path_key);
        }
        let mut values: Vec<Option<Vec<u8>>> = self.call(&cmd).await?;
        let path = match path_key {
            Some(_) => parse_gen(values.pop().flatten())?,
            None => 0,
        };
        let all = parse_gen(values.pop().flatten())?;
        let namespace = parse_gen(values.pop().flatten())?;
        Ok(Gens {
            namespace,
            all,
            path,
        })
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
        if let Some((channel, message)) = announce {
            pipe.cmd("PUBLISH").arg(channel).arg(message).ignore();
        }
        let mut conn = self.conn.clone();
        self.guarded(probe, pipe.query_async::<()>(&mut conn)).await
    }

    /// Creates the generation keys that do not exist yet (`gens` holds 0 for them) with
    /// `SET NX`, so no entry is ever written under generation 0: a generation key that is
    /// later lost (evicted, or Redis restarted) then reads as 0 and matches no entry, instead
    /// of reviving entries written before the namespace's first invalidation.
    ///
    /// Returns the generations to write under, or `None` when another process created or
    /// replaced a generation meanwhile (an invalidation may have overlapped: do not store).
    pub(crate) async fn create_generations(
        &self,
        namespace: &str,
        path: Option<&str>,
        gens: Gens,
    ) -> Result<Option<Gens>, Error> {
        let mut created = gens;
        let path_key = path.map(|p| self.gen_key(p));
        for (current, key) in [
            (&mut created.namespace, self.gen_key(namespace)),
            (&mut created.all, self.all_gen_key.clone()),
            (&mut created.path, path_key.unwrap_or_default()),
        ] {
            if *current != 0 || key.is_empty() {
                continue;
            }
            let generation = new_generation();
            let set: Option<String> = self
                .call(redis::cmd("SET").arg(key).arg(generation).arg("NX"))
                .await?;
            if set.is_none() {
                return Ok(None);
            }
            *current = generation;
        }
        Ok(Some(created))
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

/// A fresh random generation, never 0 (0 stands for "no generation key").
pub(crate) fn new_generation() -> u64 {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    RandomState::new().hash_one((crate::warn::now_ms(), n, std::process::id())) | 1
}

/// `{prefix}:__gen:{namespace}`, written straight into a command's buffer.
struct GenKey<'a>(&'a str, &'a str);

impl GenKey<'_> {
    fn len(&self) -> usize {
        self.0.len() + self.1.len()
    }
}

impl ToRedisArgs for GenKey<'_> {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        let mut arg = out.writer_for_next_arg();
        // Writing into the command's own buffer cannot fail.
        let _ = arg.write_all(self.0.as_bytes());
        let _ = arg.write_all(self.1.as_bytes());
    }
}

/// One value of an `MGET` reply: bytes, or `None` for a missing key.
fn bulk(value: Value) -> Result<Option<Vec<u8>>, Error> {
    match value {
        Value::BulkString(bytes) => Ok(Some(bytes)),
        Value::Nil => Ok(None),
        Value::SimpleString(s) => Ok(Some(s.into_bytes())),
        _ => Err(Error::BadEntry(
            "MGET answered with a value that is not a string",
        )),
    }
}

fn parse_gen(bytes: Option<Vec<u8>>) -> Result<u64, Error> {
    match bytes {
        None => Ok(0),
        Some(b) => std::str::from_utf8(&b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(Error::BadEntry(
                "a generation key holds something else than a number",
            )),
    }
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
