//! The single-node Redis connection: one multiplexed connection, made, driven and replaced on
//! the [background runtime](crate::background) only.
//!
//! redis-rs's `ConnectionManager` connects (and reconnects) on whichever runtime happens to
//! poll it first, and the connection's driver task lives there: when that runtime is dropped
//! (the end of a `#[tokio::test]`), the connection dies with it and every other runtime sees
//! errors until a reconnect. Here a caller never connects: it takes the current connection,
//! which is a pair of channels to a driver on the background runtime, and sends its request
//! straight through it (no thread hop). When there is none yet, it waits (bounded by the
//! caller's own timeout) for the background task that makes it.
//!
//! A request failing with a transport error (or `READONLY`: the server was demoted) retires the
//! connection it used and starts a reconnection in the background, with exponential backoff
//! (50 ms to 500 ms) while the server cannot be reached. A new connection is published only
//! after its [incarnation check](super::incarnation) has passed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Cmd, RedisError, RedisResult, Value};
use tokio::sync::watch;

use super::incarnation::{Failed, Incarnation};
use crate::warn::warn_limited;

const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// See the module docs. Cheap to clone (an `Arc`).
#[derive(Clone)]
pub(crate) struct Single {
    shared: Arc<Shared>,
}

struct Shared {
    client: redis::Client,
    config: AsyncConnectionConfig,
    connect_timeout: Duration,
    incarnation: Arc<Incarnation>,
    /// The connection in use and its id; `None` while (re)connecting.
    current: RwLock<Option<(u64, MultiplexedConnection)>>,
    next_id: AtomicU64,
    connecting: AtomicBool,
    /// Bumped whenever a connection is published.
    published: watch::Sender<u64>,
}

impl Single {
    /// Sets up the connection without connecting (the first request, or
    /// [`Single::start_connecting`], does).
    pub(crate) fn new(
        client: redis::Client,
        config: AsyncConnectionConfig,
        connect_timeout: Duration,
        incarnation: Arc<Incarnation>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                client,
                config,
                connect_timeout,
                incarnation,
                current: RwLock::new(None),
                next_id: AtomicU64::new(1),
                connecting: AtomicBool::new(false),
                published: watch::Sender::new(0),
            }),
        }
    }

    fn current(&self) -> Option<(u64, MultiplexedConnection)> {
        self.shared
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The connection to use, waiting for one to be made if there is none.
    async fn get(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(current) = self.current() {
            return Ok(current);
        }
        let mut published = self.shared.published.subscribe();
        loop {
            if let Some(current) = self.current() {
                return Ok(current);
            }
            self.start_connecting();
            if published.changed().await.is_err() {
                return Err(RedisError::from(std::io::Error::from(
                    std::io::ErrorKind::NotConnected,
                )));
            }
        }
    }

    /// Starts making a connection in the background, unless that is under way.
    pub(crate) fn start_connecting(&self) {
        if !self.shared.connecting.swap(true, SeqCst) {
            crate::background::spawn(connect(Arc::downgrade(&self.shared)));
        }
    }

    /// Retires connection `id` after a transport failure (unless it was replaced already).
    fn retire(&self, id: u64) {
        let mut current = self
            .shared
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if current.as_ref().is_some_and(|(c, _)| *c == id) {
            *current = None;
            drop(current);
            self.start_connecting();
        }
    }

    fn after(&self, id: u64, error: Option<&RedisError>) {
        if let Some(e) = error
            && (e.is_unrecoverable_error()
                || e.is_io_error()
                || e.is_connection_dropped()
                || e.code() == Some("READONLY"))
        {
            self.retire(id);
        }
    }
}

/// The background task making a connection: retries with backoff until one is made or the
/// cache is dropped.
async fn connect(weak: Weak<Shared>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        {
            let Some(shared) = weak.upgrade() else { return };
            match tokio::time::timeout(shared.connect_timeout, open(&shared)).await {
                Ok(Ok(conn)) => {
                    let id = shared.next_id.fetch_add(1, SeqCst);
                    // Cleared before publishing: a failure of the new connection must be able
                    // to start the next attempt.
                    shared.connecting.store(false, SeqCst);
                    *shared.current.write().unwrap_or_else(|e| e.into_inner()) = Some((id, conn));
                    shared.published.send_modify(|n| *n += 1);
                    return;
                }
                Ok(Err(e)) => warn_limited!(error = %e, "cannot connect to redis; retrying"),
                Err(_) => warn_limited!("connecting to redis timed out; retrying"),
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Connects and checks the server's incarnation.
async fn open(shared: &Shared) -> RedisResult<MultiplexedConnection> {
    let mut conn = shared
        .client
        .get_multiplexed_async_connection_with_config(&shared.config)
        .await?;
    match shared.incarnation.check(&mut conn).await {
        Ok(()) | Err(Failed::Unverifiable) => Ok(conn),
        Err(Failed::Retry(e)) => Err(e),
    }
}

impl ConnectionLike for Single {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> redis::RedisFuture<'a, Value> {
        Box::pin(async move {
            let (id, mut conn) = self.get().await?;
            let result = conn.send_packed_command(cmd).await;
            self.after(id, result.as_ref().err());
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let (id, mut conn) = self.get().await?;
            let result = conn.send_packed_commands(cmd, offset, count).await;
            self.after(id, result.as_ref().err());
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.shared
            .client
            .get_connection_info()
            .redis_settings()
            .db()
    }
}
