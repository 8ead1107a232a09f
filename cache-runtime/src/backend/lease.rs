//! Fill leases on Redis: a miss may store its value only if no invalidation of the key came
//! between its lease and its store (Nishtala et al., "Scaling Memcache at Facebook", NSDI 2013,
//! section 3.2.1).
//!
//! A miss that is about to run the body first *acquires* a lease: it writes a short marker
//! (`"\xCA\xC8"` + a random 8-byte token) into the entry's own key, with a TTL (the lease
//! term, [`crate::Config::fill_lease`]). The body runs only after that, so it reads data at
//! least as new as the lease. The value is then stored by a script that replaces the marker
//! only if the key still holds *this* marker. Every invalidation of the key deletes it (and so
//! the marker), and a namespace or cache invalidation replaces the generation the value is
//! stored under, so a fill that overlapped an invalidation is refused by Redis itself, in every
//! process. Living in the entry's key, the marker needs no extra key (and no cross-slot script
//! on a Cluster).
//!
//! The marker also gives single-flight across processes: a miss that finds another process's
//! live marker waits for that fill's value (woken by the holder's fill notice, see
//! `fill_notice.rs`, and polling the entry) instead of running the body,
//! for at most the lease term; a holder that is cancelled releases its marker at once (a guard),
//! one that dies or stalls loses it when the term ends, and the holder renews the term while
//! its body runs.

use std::time::Duration;

use redis::Script;

use super::redis::RedisStore;
use crate::Error;

/// The first bytes of a lease marker (an envelope starts with `CA C7`).
pub(crate) const MARKER_MAGIC: [u8; 2] = [0xCA, 0xC8];

/// Whether stored bytes are a lease marker rather than an entry.
pub(crate) fn is_marker(bytes: &[u8]) -> bool {
    bytes.len() == 10 && bytes[..2] == MARKER_MAGIC
}

/// A lease held by this process on one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeaseToken {
    marker: [u8; 10],
}

impl LeaseToken {
    /// A fresh, random token.
    pub(crate) fn new() -> Self {
        use std::hash::{BuildHasher, RandomState};
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let random = RandomState::new().hash_one((n, std::process::id()));
        let mut marker = [0u8; 10];
        marker[..2].copy_from_slice(&MARKER_MAGIC);
        marker[2..].copy_from_slice(&random.to_le_bytes());
        Self { marker }
    }

    /// The bytes written into the key.
    pub(crate) fn marker(&self) -> &[u8] {
        &self.marker
    }
}

/// What an acquisition found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// The lease is ours: run the body.
    Granted,
    /// Another fill holds the key for this long: wait for its value.
    Held(Duration),
    /// An entry that looks valid is there (stored since the caller looked): these bytes.
    Filled(Vec<u8>),
}

/// Whom an acquisition may take the key from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// Only a key that holds neither another fill's live marker nor a valid entry.
    Free,
    /// Also from another fill whose holder outlasted the caller's wait (its marker is replaced,
    /// so its late store is refused); never over a valid entry.
    FromHolder,
    /// Whatever the key holds (a refresh the client asked for).
    Always,
}

impl Take {
    fn arg(self) -> &'static str {
        match self {
            Take::Free => "0",
            Take::Always => "1",
            Take::FromHolder => "2",
        }
    }
}

/// `KEYS[1]` the entry, `ARGV[1]` our marker, `ARGV[2]` the term in ms, `ARGV[3]` whom to take
/// it from ([`Take`]: "0" free only, "1" always, "2" also from another holder), `ARGV[4]` the identity of a *valid* entry (envelope bytes
/// 4 to 24: codec, type tag, generations; empty: none), `ARGV[5]` now in unix ms (an entry past
/// its expiry is not valid, though a `stale` window may keep it). Returns -1 when granted, `{-2, bytes}` when a valid
/// entry is there (another fill stored it since the caller looked: look again, do not
/// overwrite it), else the holder's remaining ms.
pub(crate) static ACQUIRE: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| {
    Script::new(
        r"
local cur = redis.call('GET', KEYS[1])
if cur and ARGV[3] ~= '1' then
  if string.len(cur) == 10 and string.sub(cur, 1, 2) == '\202\200' then
    if cur ~= ARGV[1] and ARGV[3] ~= '2' then
      local left = redis.call('PTTL', KEYS[1])
      if left > 0 then return left end
    end
  elseif ARGV[4] ~= '' and string.len(cur) >= 40 and string.sub(cur, 1, 3) == '\202\199\001'
      and string.sub(cur, 4, 24) == ARGV[4] then
    local expires = 0
    for i = 40, 33, -1 do expires = expires * 256 + string.byte(cur, i) end
    if expires == 0 or expires > tonumber(ARGV[5]) then return {-2, cur} end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return -1
",
    )
});

/// `KEYS[1]` the entry, `ARGV[1]` the bytes it must still hold (our lease marker, or the entry
/// a refresh or a stale recomputation read before its body ran), `ARGV[2]` the value, `ARGV[3]`
/// the TTL in ms (0: none). Stores only over exactly those bytes (any invalidation meanwhile
/// deleted them); returns 1 when stored, 0 otherwise.
pub(crate) static STORE_OVER: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
",
    )
});

/// `KEYS[1]` the entry, `ARGV[1]` our marker, `ARGV[2]` the term in ms. Extends our lease;
/// returns 0 when it was lost.
pub(crate) static RENEW: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
",
    )
});

/// `KEYS[1]` the entry, `ARGV[1]` our marker. Gives a lease back (its fill was cancelled or
/// produced nothing to store), so waiting processes need not wait for the term.
pub(crate) static RELEASE: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
",
    )
});

impl RedisStore {
    /// Tries to take the fill lease of `key` for `term`, from whom `take` allows. `valid`: the
    /// envelope identity of an entry the caller would accept (see
    /// [`crate::envelope::identity`]); such an entry is not overwritten (but by [`Take::Always`]).
    pub(crate) async fn acquire_lease(
        &self,
        key: &str,
        token: &LeaseToken,
        term: Duration,
        take: Take,
        valid: &[u8],
    ) -> Result<Acquired, Error> {
        let mut conn = self.connection();
        let mut call = ACQUIRE.key(key);
        call.arg(token.marker())
            .arg(millis(term))
            .arg(take.arg())
            .arg(valid)
            .arg(crate::warn::now_ms());
        let reply: redis::Value = self.guarded(false, call.invoke_async(&mut conn)).await?;
        Ok(match reply {
            redis::Value::Array(mut parts) if parts.len() == 2 => match parts.pop() {
                Some(redis::Value::BulkString(bytes)) => Acquired::Filled(bytes),
                _ => return Err(Error::BadEntry("the lease script answered an odd array")),
            },
            redis::Value::Int(ms) if ms >= 0 => {
                Acquired::Held(Duration::from_millis(ms.unsigned_abs()))
            }
            redis::Value::Int(_) => Acquired::Granted,
            _ => return Err(Error::BadEntry("the lease script answered something else")),
        })
    }

    /// Stores `bytes` over our lease; `Ok(false)` when the lease was lost (an invalidation
    /// deleted it, or its term ran out and another fill took the key).
    pub(crate) async fn store_leased(
        &self,
        key: &str,
        token: &LeaseToken,
        bytes: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, Error> {
        self.store_replacing(key, token.marker(), bytes, ttl).await
    }

    /// Stores `bytes` only over exactly the `old` bytes the key held (see [`STORE_OVER`]);
    /// `Ok(false)` when they changed.
    pub(crate) async fn store_replacing(
        &self,
        key: &str,
        old: &[u8],
        bytes: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, Error> {
        let mut conn = self.connection();
        let ttl_ms = ttl.filter(|t| *t < super::redis::MAX_TTL).map_or(0, millis);
        let mut call = STORE_OVER.key(key);
        call.arg(old).arg(bytes).arg(ttl_ms);
        let stored: i64 = self.guarded(false, call.invoke_async(&mut conn)).await?;
        Ok(stored == 1)
    }

    /// Extends our lease by `term`; `Ok(false)` when it was lost.
    pub(crate) async fn renew_lease(
        &self,
        key: &str,
        token: &LeaseToken,
        term: Duration,
    ) -> Result<bool, Error> {
        let mut conn = self.connection();
        let mut call = RENEW.key(key);
        call.arg(token.marker()).arg(millis(term));
        let renewed: i64 = self.guarded(false, call.invoke_async(&mut conn)).await?;
        Ok(renewed == 1)
    }

    /// Gives our lease back.
    pub(crate) async fn release_lease(&self, key: &str, token: &LeaseToken) -> Result<(), Error> {
        let mut conn = self.connection();
        let mut call = RELEASE.key(key);
        call.arg(token.marker());
        self.guarded(false, call.invoke_async::<i64>(&mut conn))
            .await
            .map(|_| ())
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_recognised_and_never_look_like_entries() {
        let token = LeaseToken::new();
        assert!(is_marker(token.marker()));
        assert_ne!(token, LeaseToken::new());
        assert!(!is_marker(&[0xCA, 0xC7, 1, 2, 3, 4, 5, 6, 7, 8]));
        assert!(!is_marker(&token.marker()[..9]));
    }

    #[test]
    fn the_scripts_test_the_marker_magic_they_are_given() {
        // Lua's '\202\200' is the magic, in decimal escapes.
        assert_eq!(MARKER_MAGIC, [202, 200]);
        assert!(ACQUIRE.get_hash().len() == 40);
    }
}
