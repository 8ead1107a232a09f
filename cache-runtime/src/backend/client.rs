//! Building redis-rs clients: URL validation and the TCP settings (keepalive) every
//! connection of this crate uses, the store's and the bus subscriber's alike.

use std::time::Duration;

use crate::redact::redact_url;
use crate::{Config, Error};

/// [`Error::InvalidUrl`] for `url` (its password redacted, also from the reason), with a hint
/// when `rediss://` lacks the `tls` feature.
pub(crate) fn invalid_url(url: &str, e: impl std::fmt::Display) -> Error {
    let redacted = redact_url(url);
    let mut reason = e.to_string();
    if !url.is_empty() {
        reason = reason.replace(url, &redacted);
    }
    if url.starts_with("rediss://") && !cfg!(feature = "tls") {
        reason = "rediss:// needs the `tls` feature of cache-runtime".to_owned();
    }
    Error::InvalidUrl {
        url: redacted,
        reason,
    }
}

/// TCP keepalive on every connection: a peer that vanished without a reset (a crashed host,
/// a dropped route) is noticed within about 5 s + 3 × 1 s instead of the system default
/// (2 hours on Linux), and unacknowledged writes give up after 10 s.
pub(crate) fn tcp_settings(base: &redis::io::tcp::TcpSettings) -> redis::io::tcp::TcpSettings {
    use redis::io::tcp::socket2::TcpKeepalive;
    let keepalive = TcpKeepalive::new()
        .with_time(Duration::from_secs(5))
        .with_interval(Duration::from_secs(1))
        .with_retries(3);
    let settings = base.clone().set_keepalive(keepalive);
    #[cfg(target_os = "linux")]
    let settings = settings.set_user_timeout(Duration::from_secs(10));
    settings
}

/// A client for `url`, with [`tcp_settings`] and the configured TLS settings.
pub(crate) fn open_client(url: &str, config: &Config) -> Result<redis::Client, Error> {
    if !(url.starts_with("redis://")
        || url.starts_with("rediss://")
        || url.starts_with("redis+unix://")
        || url.starts_with("unix://"))
    {
        return Err(invalid_url(
            url,
            "expected redis://, rediss:// or unix:// URL",
        ));
    }
    let info =
        redis::IntoConnectionInfo::into_connection_info(url).map_err(|e| invalid_url(url, e))?;
    let settings = tcp_settings(info.tcp_settings());
    let info = info.set_tcp_settings(settings);
    #[cfg(feature = "tls")]
    if let Some(tls) = tls_for(url, config)? {
        let client = redis::Client::build_with_tls(info, tls.certificates())
            .map_err(|e| invalid_url(url, format!("TLS settings: {e}")))?;
        return Ok(client);
    }
    #[cfg(not(feature = "tls"))]
    let _ = config;
    let client = redis::Client::open(info).map_err(|e| invalid_url(url, e))?;
    if client.get_connection_info().redis_settings().db() < 0 {
        return Err(invalid_url(url, "the database number must not be negative"));
    }
    Ok(client)
}

/// The TLS settings to use for `url`, checked: they need a `rediss://` URL and readable PEM.
/// Also makes sure rustls has a crypto provider.
#[cfg(feature = "tls")]
pub(crate) fn tls_for<'a>(
    url: &str,
    config: &'a Config,
) -> Result<Option<&'a crate::config::tls::Tls>, Error> {
    let Some(tls) = &config.tls else {
        return Ok(None);
    };
    if !url.starts_with("rediss://") {
        return Err(invalid_url(
            url,
            "TLS settings (Config::tls) need a rediss:// URL",
        ));
    }
    tls.check().map_err(|e| invalid_url(url, e))?;
    crate::config::tls::install_crypto_provider();
    Ok(Some(tls))
}

/// [`Error::InvalidUrl`] for a cluster's seed list (each URL redacted).
pub(crate) fn invalid_cluster(urls: &[String], e: impl std::fmt::Display) -> Error {
    let mut reason = e.to_string();
    for url in urls.iter().filter(|u| !u.is_empty()) {
        reason = reason.replace(url.as_str(), &redact_url(url));
    }
    Error::InvalidUrl {
        url: crate::redact::redact_urls(urls),
        reason,
    }
}
