//! `rediss://` for real (feature `tls`): a `redis-server` with a TLS port and certificates made
//! by the test with `openssl` (a private CA, a server certificate for `IP:127.0.0.1`, a client
//! certificate, and a rogue CA), reached through `Config::tls`.
//!
//! - a private CA: entries are stored over TLS, hit and invalidated;
//! - mutual TLS (`--tls-auth-clients yes`): works with the client certificate, and without it
//!   the server refuses the cache, which fails open;
//! - a server certificate the cache does not trust: refused, the cache fails open (like an
//!   unreachable Redis: `Cache::new` does not wait for the connection) and logs why;
//! - unreadable or misplaced TLS settings: a clear `Error::InvalidUrl` from `Cache::new`, the
//!   URL's password redacted.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cache_runtime::{Cache, Config, Error, Tls};
use cache_tests::{RedisServer, free_port, wait_until};

/// Every test under this outer timeout.
const OUTER: Duration = Duration::from_secs(60);

/// Certificates made for one test, in their own directory.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// A CA, a server certificate for 127.0.0.1 and a client certificate signed by it, and a
    /// rogue CA with its own server certificate for 127.0.0.1.
    fn generate(tag: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("cache-tests-tls-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let pki = Self { dir };
        pki.ca("ca");
        pki.leaf("server", "ca", "serverAuth", "subjectAltName=IP:127.0.0.1");
        pki.leaf(
            "client",
            "ca",
            "clientAuth",
            "subjectAltName=DNS:cache-client",
        );
        pki.ca("rogue");
        pki.leaf(
            "rogue-server",
            "rogue",
            "serverAuth",
            "subjectAltName=IP:127.0.0.1",
        );
        pki
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("openssl must be installed");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn ca(&self, name: &str) {
        let (key, pem, subj) = (
            format!("{name}.key"),
            format!("{name}.pem"),
            format!("/CN={name}"),
        );
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "2",
            "-subj",
            &subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
    }

    fn leaf(&self, name: &str, ca: &str, usage: &str, san: &str) {
        let ext = format!("{name}.ext");
        std::fs::File::create(self.dir.join(&ext))
            .unwrap()
            .write_all(
                format!(
                    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                     extendedKeyUsage={usage}\n{san}\n"
                )
                .as_bytes(),
            )
            .unwrap();
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        let subj = format!("/CN={name}");
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &subj,
        ]);
        let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ]);
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).to_string_lossy().into_owned()
    }

    fn read(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(file)).unwrap()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A server whose TLS port presents `cert` (`server` or `rogue-server`), checking client
/// certificates against the CA when `auth_clients`. Its plain port stays open for inspection.
fn tls_server(pki: &Pki, cert: &str, auth_clients: bool) -> (RedisServer, u16) {
    let tls_port = free_port();
    let server = RedisServer::start_with(&[
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        &pki.path(&format!("{cert}.pem")),
        "--tls-key-file",
        &pki.path(&format!("{cert}.key")),
        "--tls-ca-cert-file",
        &pki.path("ca.pem"),
        "--tls-auth-clients",
        if auth_clients { "yes" } else { "no" },
    ]);
    (server, tls_port)
}

fn url(tls_port: u16) -> String {
    format!("rediss://127.0.0.1:{tls_port}")
}

fn config(tls_port: u16, tls: Tls) -> Config {
    Config::redis(url(tls_port))
        .timeout(Duration::from_millis(500))
        .tls(tls)
}

/// One cached call of `k` (value `k + 1`).
async fn call(cache: &Cache, k: u64) -> u64 {
    cache
        .get_or_insert_with(
            "tls",
            &k,
            Some(Duration::from_secs(60)),
            async move { k + 1 },
        )
        .await
}

/// Calls until the cache hits (it connects in the background), then checks the entry lives
/// in the server and that an invalidation drops it.
async fn works_over_tls(cache: &Cache, server: &RedisServer) {
    wait_until("a hit over TLS", Duration::from_secs(10), async || {
        assert_eq!(call(cache, 7).await, 8);
        cache.stats().total.hits > 0
    })
    .await;
    let mut plain = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*:tls:*")
        .query_async(&mut plain)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    cache.delete::<u64>("tls", &7u64).await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*:tls:*")
        .query_async(&mut plain)
        .await
        .unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}

#[tokio::test]
async fn a_private_ca_is_trusted() {
    tokio::time::timeout(OUTER, async {
        let pki = Pki::generate("ca");
        let (server, tls_port) = tls_server(&pki, "server", false);
        let cache = Cache::new(config(tls_port, Tls::new().ca_pem(pki.read("ca.pem"))))
            .await
            .unwrap();
        works_over_tls(&cache, &server).await;
    })
    .await
    .expect("outer timeout");
}

#[tokio::test]
async fn mutual_tls_with_a_client_certificate() {
    tokio::time::timeout(OUTER, async {
        let pki = Pki::generate("mutual");
        let (server, tls_port) = tls_server(&pki, "server", true);
        let tls = Tls::new()
            .ca_pem(pki.read("ca.pem"))
            .client_cert(pki.read("client.pem"), pki.read("client.key"));
        let cache = Cache::new(config(tls_port, tls)).await.unwrap();
        works_over_tls(&cache, &server).await;
    })
    .await
    .expect("outer timeout");
}

/// Log lines written by the cache, captured for the test that checks the refusal is logged.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs calls for a while: every one returns the body's value, none hits, and the failures
/// are counted.
async fn fails_open(cache: &Cache) {
    wait_until("errors counted", Duration::from_secs(10), async || {
        for k in 0..5 {
            assert_eq!(call(cache, k).await, k + 1);
        }
        cache.stats().total.errors >= 5
    })
    .await;
    assert_eq!(cache.stats().total.hits, 0);
}

/// The only test of this file whose connections fail (the warning is rate-limited per call
/// site, so the log check must not race another test's failures).
#[tokio::test]
async fn refused_certificates_fail_open_and_say_why() {
    tokio::time::timeout(OUTER, async {
        let logs = Logs::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .init();
        let pki = Pki::generate("refused");

        // A server certificate from a CA the cache does not trust.
        let (_rogue, tls_port) = tls_server(&pki, "rogue-server", false);
        let cache = Cache::new(config(tls_port, Tls::new().ca_pem(pki.read("ca.pem"))))
            .await
            .expect("like an unreachable server, an untrusted one is not an error at start");
        fails_open(&cache).await;
        let logged = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
        assert!(
            logged.contains("cannot connect to redis") && logged.contains("certificate"),
            "{logged}"
        );
        // Nor is it trusted through the public roots.
        let cache = Cache::new(Config::redis(url(tls_port)).timeout(Duration::from_millis(500)))
            .await
            .unwrap();
        fails_open(&cache).await;

        // Mutual TLS: without a client certificate the server refuses the cache.
        let (_server, tls_port) = tls_server(&pki, "server", true);
        let cache = Cache::new(config(tls_port, Tls::new().ca_pem(pki.read("ca.pem"))))
            .await
            .unwrap();
        fails_open(&cache).await;
    })
    .await
    .expect("outer timeout");
}

#[tokio::test]
async fn unreadable_or_misplaced_tls_settings_are_clear_errors() {
    let pki = Pki::generate("settings");
    let secret_url = "rediss://app:hunter2@127.0.0.1:6390";
    let cases: [(&str, Tls, &str); 5] = [
        (
            secret_url,
            Tls::new().ca_pem(b"not a pem".to_vec()),
            "CA PEM holds no certificate",
        ),
        (
            secret_url,
            Tls::new().ca_pem(pki.read("ca.key")),
            "CA PEM holds no certificate",
        ),
        (
            secret_url,
            Tls::new().client_cert(pki.read("client.pem"), b"garbage".to_vec()),
            "client key",
        ),
        (
            secret_url,
            Tls::new().client_cert(b"garbage".to_vec(), pki.read("client.key")),
            "client certificate PEM holds no certificate",
        ),
        (
            "redis://app:hunter2@127.0.0.1:6390",
            Tls::new().ca_pem(pki.read("ca.pem")),
            "need a rediss:// URL",
        ),
    ];
    for (url, tls, expected) in cases {
        let err = Cache::new(Config::redis(url).tls(tls.clone()))
            .await
            .expect_err("bad TLS settings must be refused");
        let shown = format!("{err} / {err:?}");
        assert!(matches!(err, Error::InvalidUrl { .. }), "{shown}");
        assert!(shown.contains(expected), "{expected}: {shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        // The same on a Cluster.
        let err = Cache::new(Config::redis_cluster([url]).tls(tls))
            .await
            .expect_err("bad TLS settings must be refused");
        assert!(format!("{err}").contains(expected), "{err}");
    }
}
