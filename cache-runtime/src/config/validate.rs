//! The bounds of every setting, checked by [`crate::init`] and [`crate::Cache::new`].

use std::time::Duration;

use super::{Backend, Config};

/// The longest [`Config::timeout`] and [`Config::connect_timeout`]: one hour.
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(3_600);
/// The longest [`Config::bus_heartbeat`]: one hour.
pub(crate) const MAX_HEARTBEAT: Duration = Duration::from_secs(3_600);
/// The shortest [`Config::bus_heartbeat`]: one millisecond.
pub(crate) const MIN_HEARTBEAT: Duration = Duration::from_millis(1);
/// The longest circuit breaker cooldown: one day.
pub(crate) const MAX_COOLDOWN: Duration = Duration::from_secs(86_400);
/// The shortest fill lease term: 10 ms.
pub(crate) const MIN_FILL_LEASE: Duration = Duration::from_millis(10);
/// The longest fill lease term: one day.
pub(crate) const MAX_FILL_LEASE: Duration = Duration::from_secs(86_400);
/// The longest L1 TTL: 365 days.
pub(crate) const MAX_L1_TTL: Duration = Duration::from_secs(365 * 86_400);
/// The room a key needs besides its prefix: a separator and a 33-byte hash, with margin.
pub(crate) const KEY_ROOM: usize = 64;

/// A setting out of range or inconsistent with another: the cause of
/// [`crate::Error::InvalidConfig`]. Each variant names the setting and the bound it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// [`Config::prefix`] is empty or contains whitespace.
    #[error("prefix {0:?} must be non-empty and contain no whitespace")]
    Prefix(String),
    /// A count that must be at least 1 is 0.
    #[error("{setting} must be at least 1")]
    Zero {
        /// The setting, e.g. `max_entries`.
        setting: &'static str,
    },
    /// A duration is outside its bounds.
    #[error("{setting} of {value:?} is outside its bounds {min:?} ..= {max:?}")]
    Duration {
        /// The setting, e.g. `timeout`.
        setting: &'static str,
        /// The value given.
        value: Duration,
        /// The shortest accepted.
        min: Duration,
        /// The longest accepted.
        max: Duration,
    },
    /// [`Config::max_key_len`] leaves no room for the prefix and a hash.
    #[error("max_key_len of {value} must be at least {min} (the prefix's length + {KEY_ROOM})")]
    MaxKeyLen {
        /// The value given.
        value: usize,
        /// The shortest accepted with this prefix.
        min: usize,
    },
    /// [`Config::with_l1`] on the memory backend.
    #[error("with_l1 is for the Redis backends; the memory backend is already in-process")]
    L1OnMemory,
    /// [`Config::redis_cluster`] with no URL.
    #[error("redis_cluster needs at least one URL")]
    NoClusterUrl,
    /// A Redis backend was asked of a memory configuration.
    #[error("not a Redis configuration")]
    NotRedis,
    /// An HTTP header name that is not one.
    #[error("{0:?} is not a valid header name")]
    HeaderName(String),
    /// [`crate::FillOptions`] that do not make sense together (see
    /// [`crate::FillOptions::validate`]).
    #[error("FillOptions: {0}")]
    FillOptions(&'static str),
}

fn duration(
    setting: &'static str,
    value: Duration,
    min: Duration,
    max: Duration,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::Duration {
            setting,
            value,
            min,
            max,
        });
    }
    Ok(())
}

fn at_least_one(setting: &'static str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::Zero { setting });
    }
    Ok(())
}

impl Config {
    /// Checks every setting against its documented bounds.
    pub(crate) fn validate(&self) -> Result<(), crate::Error> {
        self.check().map_err(crate::Error::InvalidConfig)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.prefix.is_empty() || self.prefix.contains(char::is_whitespace) {
            return Err(ConfigError::Prefix(self.prefix.clone()));
        }
        at_least_one("max_entries", self.max_entries)?;
        at_least_one("max_bytes", self.max_bytes)?;
        at_least_one("circuit_breaker failures", self.breaker_threshold.into())?;
        let nonzero = Duration::from_nanos(1);
        duration("timeout", self.timeout, nonzero, MAX_TIMEOUT)?;
        duration(
            "connect_timeout",
            self.connect_timeout,
            nonzero,
            MAX_TIMEOUT,
        )?;
        let cooldown = self.breaker_cooldown;
        duration(
            "circuit_breaker cooldown",
            cooldown,
            Duration::ZERO,
            MAX_COOLDOWN,
        )?;
        duration(
            "bus_heartbeat",
            self.bus_heartbeat,
            MIN_HEARTBEAT,
            MAX_HEARTBEAT,
        )?;
        duration(
            "fill_lease",
            self.fill_lease,
            MIN_FILL_LEASE,
            MAX_FILL_LEASE,
        )?;
        let min_key = self.prefix.len().saturating_add(KEY_ROOM);
        if self.max_key_len < min_key {
            return Err(ConfigError::MaxKeyLen {
                value: self.max_key_len,
                min: min_key,
            });
        }
        if let Some(l1) = self.l1 {
            at_least_one("L1 max_entries", l1.max_entries)?;
            duration("L1 ttl", l1.ttl, nonzero, MAX_L1_TTL)?;
        }
        match &self.backend {
            Backend::Memory if self.l1.is_some() => Err(ConfigError::L1OnMemory),
            Backend::Cluster(urls) if urls.is_empty() => Err(ConfigError::NoClusterUrl),
            _ => Ok(()),
        }
    }
}
