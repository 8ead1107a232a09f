//! TLS settings for `rediss://` URLs (feature `tls`): a private CA to trust, and a client
//! certificate for mutual TLS.

/// TLS settings for `rediss://` connections, given to [`crate::Config::tls`].
///
/// Without them (or without [`Tls::ca_pem`]), a `rediss://` server must present a certificate
/// issued by a public CA (the Mozilla root store). The server's certificate must name the
/// URL's host (an IP address in the URL needs an `IP:` subject alternative name). Certificates
/// and keys are PEM; they are checked when the cache is built ([`crate::Cache::new`] fails
/// with [`crate::Error::InvalidUrl`] on unreadable PEM). A server whose certificate is not
/// trusted is handled like an unreachable one: the cache fails open and logs why it cannot
/// connect (e.g. `invalid peer certificate: UnknownIssuer`).
///
/// `Debug` never prints the private key.
///
/// ```
/// use cache_runtime::{Config, Tls};
///
/// # let (ca, cert, key) = (b"", b"", b"");
/// // ca, cert, key: PEM bytes, e.g. from std::fs::read("ca.pem")?
/// let config = Config::redis("rediss://cache.internal:6380").tls(
///     Tls::new()
///         .ca_pem(ca.as_slice())
///         .client_cert(cert.as_slice(), key.as_slice()),
/// );
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tls {
    pub(crate) ca_pem: Option<Vec<u8>>,
    pub(crate) client: Option<(Vec<u8>, Vec<u8>)>,
}

impl Tls {
    /// No private CA, no client certificate.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts the CA certificate(s) in `pem` instead of the public roots.
    ///
    /// ```
    /// # let pem = b"";
    /// let tls = cache_runtime::Tls::new().ca_pem(pem.as_slice());
    /// ```
    #[must_use]
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// Presents `cert_pem` (a certificate chain) with its private key `key_pem` to servers
    /// that ask for a client certificate (mutual TLS, `tls-auth-clients yes`).
    ///
    /// ```
    /// # let (cert, key) = (b"", b"");
    /// let tls = cache_runtime::Tls::new().client_cert(cert.as_slice(), key.as_slice());
    /// ```
    #[must_use]
    pub fn client_cert(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.client = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// Whether the PEM holds what it must: at least one CA certificate, a certificate chain
    /// and a private key (redis-rs would silently take an empty CA list and trust nothing).
    pub(crate) fn check(&self) -> Result<(), String> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certificates = |pem: &[u8], what: &str| {
            let n = CertificateDer::pem_slice_iter(pem)
                .map(|c| c.map_err(|e| format!("TLS: cannot read the {what} PEM: {e}")))
                .collect::<Result<Vec<_>, _>>()?
                .len();
            if n == 0 {
                return Err(format!("TLS: the {what} PEM holds no certificate"));
            }
            Ok(())
        };
        if let Some(ca) = &self.ca_pem {
            certificates(ca, "CA")?;
        }
        if let Some((cert, key)) = &self.client {
            certificates(cert, "client certificate")?;
            PrivateKeyDer::from_pem_slice(key)
                .map_err(|e| format!("TLS: cannot read the client key PEM: {e}"))?;
        }
        Ok(())
    }

    /// The redis-rs form of these settings.
    pub(crate) fn certificates(&self) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: self
                .client
                .as_ref()
                .map(|(cert, key)| redis::ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.clone(),
                }),
            root_cert: self.ca_pem.clone(),
        }
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field(
                "ca_pem",
                &self.ca_pem.as_ref().map(|p| format!("{} bytes", p.len())),
            )
            .field(
                "client_cert",
                &self
                    .client
                    .as_ref()
                    .map(|_| "<certificate and <redacted> key>"),
            )
            .finish()
    }
}

/// Makes sure rustls has a process-wide crypto provider (ring), which redis-rs needs to build
/// its TLS configuration; one the application installed first is kept.
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_key() {
        let tls = Tls::new().ca_pem(b"CA".to_vec()).client_cert(
            b"CERT".to_vec(),
            b"-----BEGIN PRIVATE KEY----- secret".to_vec(),
        );
        let shown = format!("{tls:?}");
        assert!(
            !shown.contains("secret") && !shown.contains("PRIVATE"),
            "{shown}"
        );
        assert!(shown.contains("2 bytes"), "{shown}");
    }
}
