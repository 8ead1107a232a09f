//! [`FillOptions`]: the resilience options of a computed entry (`ttl`, `stale`, `timeout`,
//! `refresh_after`), as the manual API takes them, and their consistency check.

use std::time::Duration;

use crate::ConfigError;

/// Resilience options of a computed entry: [`crate::Cache::get_or_insert_with_options`] and
/// `#[cached(expire, stale, timeout_ms, refresh_after)]`.
///
/// ```
/// use std::time::Duration;
/// use cache_runtime::FillOptions;
///
/// let opts = FillOptions::new()
///     .ttl(Duration::from_secs(60))
///     .stale(Duration::from_secs(3600))
///     .timeout(Duration::from_millis(200))
///     .refresh_after(Duration::from_secs(45));
/// assert_eq!(opts.stale, Some(Duration::from_secs(3600)));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FillOptions {
    /// Time to live; `None`: until evicted or invalidated.
    pub ttl: Option<Duration>,
    /// How long past `ttl` the value is kept to be served when the source fails.
    pub stale: Option<Duration>,
    /// With a stale value: how long a caller waits for the source before getting it (the
    /// computation goes on in the background and its value replaces the entry).
    pub timeout: Option<Duration>,
    /// A hit on an entry older than this starts one background refresh of it.
    pub refresh_after: Option<Duration>,
}

impl FillOptions {
    /// No TTL, no resilience: what [`crate::Cache::get_or_insert_with`] does.
    ///
    /// ```
    /// assert_eq!(cache_runtime::FillOptions::new().ttl, None);
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets [`FillOptions::ttl`].
    ///
    /// ```
    /// use std::time::Duration;
    /// let opts = cache_runtime::FillOptions::new().ttl(Duration::from_secs(60));
    /// ```
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }
    /// Sets [`FillOptions::stale`].
    ///
    /// ```
    /// use std::time::Duration;
    /// let opts = cache_runtime::FillOptions::new().ttl(Duration::from_secs(60)).stale(Duration::from_secs(3600));
    /// ```
    #[must_use]
    pub fn stale(mut self, stale: Duration) -> Self {
        self.stale = Some(stale);
        self
    }
    /// Sets [`FillOptions::timeout`].
    ///
    /// ```
    /// use std::time::Duration;
    /// let opts = cache_runtime::FillOptions::new()
    ///     .ttl(Duration::from_secs(60))
    ///     .stale(Duration::from_secs(3600))
    ///     .timeout(Duration::from_millis(200));
    /// ```
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// Sets [`FillOptions::refresh_after`].
    ///
    /// ```
    /// use std::time::Duration;
    /// let opts = cache_runtime::FillOptions::new()
    ///     .ttl(Duration::from_secs(60))
    ///     .refresh_after(Duration::from_secs(45));
    /// ```
    #[must_use]
    pub fn refresh_after(mut self, after: Duration) -> Self {
        self.refresh_after = Some(after);
        self
    }
}

impl FillOptions {
    /// Checks that the options make sense together, as `#[cached]` does at compile time:
    /// durations above zero; `stale` and `refresh_after` need a `ttl` (an entry that never
    /// expires is never stale, nor old enough to refresh before it expires), `refresh_after`
    /// below it; `timeout` needs `stale` (without a stale value the caller always waits). The
    /// manual API runs such options anyway (the options that cannot apply change nothing) and
    /// logs this error as a warning.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cache_runtime::FillOptions;
    ///
    /// let ok = FillOptions::new().ttl(Duration::from_secs(60)).refresh_after(Duration::from_secs(45));
    /// assert!(ok.validate().is_ok());
    /// let late = FillOptions::new().ttl(Duration::from_secs(60)).refresh_after(Duration::from_secs(60));
    /// assert!(late.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |problem| Err(ConfigError::FillOptions(problem));
        let zero = [self.ttl, self.stale, self.timeout, self.refresh_after]
            .contains(&Some(Duration::ZERO));
        if zero {
            return bad("durations must be above zero");
        }
        if self.ttl.is_none() && self.stale.is_some() {
            return bad("`stale` needs a `ttl`: an entry that never expires is never stale");
        }
        if self.timeout.is_some() && self.stale.is_none() {
            return bad("`timeout` needs `stale`: without a stale value the caller always waits");
        }
        match (self.refresh_after, self.ttl) {
            (Some(_), None) => bad("`refresh_after` needs a `ttl` above it"),
            (Some(after), Some(ttl)) if after >= ttl => {
                bad("`refresh_after` must be below `ttl`: the entry expires before")
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_inconsistency_is_reported_and_consistent_options_pass() {
        let s = Duration::from_secs;
        let full = FillOptions::new()
            .ttl(s(60))
            .stale(s(600))
            .timeout(Duration::from_millis(200))
            .refresh_after(s(45));
        assert_eq!(full.validate(), Ok(()));
        assert_eq!(FillOptions::new().validate(), Ok(()));
        for bad in [
            full.ttl(Duration::ZERO),
            full.stale(Duration::ZERO),
            full.timeout(Duration::ZERO),
            FillOptions { ttl: None, ..full },
            FillOptions::new().stale(s(1)),
            FillOptions {
                stale: None,
                ..full
            },
            FillOptions::new().refresh_after(s(1)),
            full.refresh_after(s(60)),
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
