//! The generation keys: read with an entry in one `MGET`, read alone, and created with
//! `SET NX` before a first write (see [`crate::namespace`]).

use std::hash::{BuildHasher, RandomState};
use std::io::Write as _;

use redis::{Cmd, RedisWrite, ToRedisArgs, Value};

use super::{Read, RedisStore};
use crate::Error;
use crate::namespace::Gens;

impl RedisStore {
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
        let values = self.mget(&cmd).await?;
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
        let mut values = self.mget(&cmd).await?;
        let mut next = || bulk(values.pop().unwrap_or(Value::Nil));
        let path = match path_key {
            Some(_) => parse_gen(next()?)?,
            None => 0,
        };
        let all = parse_gen(next()?)?;
        let namespace = parse_gen(next()?)?;
        Ok(Gens {
            namespace,
            all,
            path,
        })
    }

    /// Runs an `MGET` and returns its values. On a Cluster, where the keys live in different
    /// slots, it is one `GET` per key instead, sent concurrently, each routed by its own slot:
    /// redis-rs (1.8) splits a multi-slot `MGET` per node but silently leaves out the part of a
    /// node it holds no connection to (a master that died and was replaced by its replica),
    /// then fails the whole command ("Mismatch in the number of multi-slot results") without
    /// refreshing its view of the cluster, so after a failover the failed-over slots would
    /// never be read again. A single-slot command finds the new master (a fallback connection
    /// answers `MOVED`, which refreshes the slot map). One timeout bounds them all.
    async fn mget(&self, cmd: &Cmd) -> Result<Vec<Value>, Error> {
        let cluster = match self.conn() {
            super::Conn::Single(_) => None,
            super::Conn::Cluster(cluster) => Some(cluster),
        };
        let Some(cluster) = cluster else {
            return match self.call::<Value>(cmd).await? {
                Value::Array(values) => Ok(values),
                _ => Err(Error::BadEntry(
                    "MGET answered with something else than an array",
                )),
            };
        };
        let gets = cmd.args_iter().skip(1).map(|arg| {
            let key = match arg {
                redis::Arg::Simple(key) => key,
                _ => &[][..],
            };
            let mut conn = cluster.clone();
            let mut get = redis::cmd("GET");
            get.arg(key);
            async move { get.query_async::<Value>(&mut conn).await }
        });
        self.guarded(false, futures_util::future::try_join_all(gets))
            .await
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
