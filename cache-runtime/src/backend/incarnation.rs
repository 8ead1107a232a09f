//! Server incarnations: a Redis restarted from its RDB/AOF files, or a replica promoted while
//! behind, serves data from the past, including entries this cache has since invalidated.
//! This module makes sure none of them is ever served again.
//!
//! # How
//! A Redis server's *incarnation* is its `run_id` (new on every start, from `INFO server`)
//! with its `master_replid` (new whenever it becomes a master, from `INFO replication`). Each
//! cache records the incarnation it last checked *in the dataset*, under `{prefix}:__incarnation`.
//! Every connection of the single-node store is checked before its first request (one round
//! trip: both `INFO` sections and that key): if the key does not name the server's current
//! incarnation, the dataset may come from another one, so, atomically (one script that
//! compares the key again and runs one `MSET`), the
//! whole-cache generation `{prefix}:__gen` is replaced and the key set to the current
//! incarnation. Every stored entry carries the whole-cache generation it was written under and
//! lookups accept only the current one (see `namespace.rs`), so every entry that came back
//! is retired at once, in every process. When the incarnation differs from the one this
//! process saw last, it also forgets its cached generations and flushes its L1 (tiered).
//!
//! Because the key lives in the dataset, a process that never saw the old incarnation (started
//! after the restart) is covered too, and only one process needs to do the replacement: the key
//! is written only together with a new generation, so "the key names this incarnation" implies
//! "everything older was retired in this incarnation".
//!
//! # Guarantee
//! With a single Redis server, after a restart from persisted data or a failover, no lookup
//! returns an entry written before the last invalidation that the new incarnation lost: a
//! restart or failover closes every connection, and no request goes over a new connection
//! before the check has passed (lookups meanwhile fail open: the body runs). The hit path
//! pays nothing for this: the check runs once per connection, on the background runtime.
//!
//! # Not covered
//! - Redis Cluster: nodes reconnect inside the cluster client, where no check can be hooked
//!   in; a node restarted from old files can serve revived entries of its slots. Failover on
//!   a Cluster: replication is asynchronous, so an invalidation (`DEL` of an entry or of a
//!   generation key) that a master acknowledged but had not yet sent to its replica when it
//!   died is lost with it, and the promoted replica serves the old entry again until its
//!   TTL. That is Redis Cluster's own window of lost acknowledged writes (its specification:
//!   "not able to guarantee strong consistency"); it lasts until the master's next event-loop
//!   turn writes the replication stream, under a millisecond on a healthy link, longer when the
//!   link to the replica lags. Nothing is retired on a Cluster failover.
//! - A proxy that keeps client connections open across a failover behind it: there is no new
//!   connection to check.
//! - A user whose ACL forbids `INFO`, `EVAL` or `MSET`: the check cannot run; the connection is used
//!   unchecked and a warning is logged.
//! - A master demoted to a replica without closing connections: its first `READONLY` reply
//!   retires the connection and the next one is checked, but reads answered before that reply
//!   can return what the resync brought back.
//! - The first connection to a server without the key (a new server, or one upgraded from an
//!   older release) retires the whole cache once.

use std::sync::{LazyLock, Mutex, OnceLock};

use redis::RedisResult;
use redis::aio::MultiplexedConnection;

use crate::warn::warn_limited;

/// What to do in this process when the server's incarnation changed (flush the L1, forget
/// generations).
pub(crate) type OnChange = Box<dyn Fn() + Send + Sync>;

/// Sets the marker to this incarnation together with a new whole-cache generation, unless the
/// marker names it already: 1 if it retired the cache, 0 if not.
static RETIRE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then return 0 end
redis.call('MSET', KEYS[2], ARGV[2], KEYS[1], ARGV[1])
return 1",
    )
});

/// See the module docs.
pub(crate) struct Incarnation {
    marker_key: String,
    all_gen_key: String,
    /// The incarnation this process checked last.
    last_seen: Mutex<Option<String>>,
    on_change: OnceLock<OnChange>,
}

/// The outcome of a failed check: retry the connection, or use it unchecked.
///
/// A read-only server (a replica) that needs a retirement is retried, not used: the cache
/// stays off (fails open) rather than serve what it cannot retire.
pub(crate) enum Failed {
    /// A transport failure or a transient server state (loading, no master): try again.
    Retry(redis::RedisError),
    /// The server refuses the check for good (ACL, read-only): the connection is used.
    Unverifiable,
}

impl Incarnation {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            marker_key: format!("{prefix}:__incarnation"),
            all_gen_key: format!("{prefix}:__gen"),
            last_seen: Mutex::new(None),
            on_change: OnceLock::new(),
        }
    }

    /// Sets what to do in this process when the incarnation changes (once).
    pub(crate) fn on_change(&self, f: OnChange) {
        let _ = self.on_change.set(f);
    }

    /// Checks a new connection before its first request; see the module docs.
    pub(crate) async fn check(&self, conn: &mut MultiplexedConnection) -> Result<(), Failed> {
        self.try_check(conn).await.map_err(|e| {
            let transient = e.is_io_error()
                || e.is_timeout()
                || e.is_connection_dropped()
                || e.is_unrecoverable_error()
                || matches!(
                    e.code(),
                    Some("LOADING" | "MASTERDOWN" | "TRYAGAIN" | "BUSY" | "READONLY")
                );
            if transient {
                Failed::Retry(e)
            } else {
                warn_limited!(error = %e, "cannot check the redis server's incarnation; entries it revives from old data may be served");
                Failed::Unverifiable
            }
        })
    }

    async fn try_check(&self, conn: &mut MultiplexedConnection) -> RedisResult<()> {
        let (server, replication, marker): (String, String, Option<String>) = redis::pipe()
            .cmd("INFO")
            .arg("server")
            .cmd("INFO")
            .arg("replication")
            .cmd("GET")
            .arg(&self.marker_key)
            .query_async(conn)
            .await?;
        let current = identity(&server, &replication);
        let retire = marker.as_deref() != Some(current.as_str())
            // Compare and replace in one script: of connections that all read the old marker
            // (several processes starting at once), only the first retires the cache; the
            // others find the marker naming this incarnation already.
            && RETIRE
                .key(&self.marker_key)
                .key(&self.all_gen_key)
                .arg(&current)
                .arg(super::redis::new_generation())
                .invoke_async::<i64>(conn)
                .await?
                == 1;
        let moved = {
            let mut last = self.last_seen.lock().unwrap_or_else(|e| e.into_inner());
            let moved = last.as_ref().is_some_and(|l| *l != current);
            *last = Some(current);
            moved
        };
        if moved || retire {
            if moved {
                tracing::warn!(
                    "redis restarted or failed over; entries it may have revived are retired"
                );
            }
            if let Some(f) = self.on_change.get() {
                f();
            }
        }
        Ok(())
    }
}

/// `run_id/master_replid`, from the `INFO server` and `INFO replication` replies.
fn identity(server: &str, replication: &str) -> String {
    format!(
        "{}/{}",
        field(server, "run_id"),
        field(replication, "master_replid")
    )
}

fn field<'a>(info: &'a str, name: &str) -> &'a str {
    info.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map_or("", str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_reads_both_fields() {
        let server = "# Server\r\nredis_version:7.0.15\r\nrun_id:abc\r\ntcp_port:6379\r\n";
        let replication =
            "# Replication\r\nrole:master\r\nmaster_replid:def\r\nmaster_replid2:000\r\n";
        assert_eq!(identity(server, replication), "abc/def");
        assert_eq!(identity("", ""), "/");
    }
}
