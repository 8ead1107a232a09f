//! The exact keys of known calls, read back from a real Redis the test starts: they must never
//! change between builds, processes or platforms (other processes and older deployments share
//! them). A failure here means every deployed cache would miss after an upgrade: change the
//! expected keys only on purpose. (The function paths in them come from
//! `std::any::type_name_of_val`, which a toolchain upgrade may respell: one round of misses.)

use std::time::Duration;

use cache_runtime::{Config, cached};
use cache_tests::RedisServer;

#[cached(namespace = "golden")]
async fn get_user(id: u64, name: String) -> String {
    format!("{id}:{name}")
}

mod changed_type {
    use super::*;
    /// A function of the same name and namespace in another module, returning another type.
    #[cached(namespace = "golden")]
    pub async fn get_user(id: u64, name: String) -> u64 {
        let _ = name;
        id
    }
}

struct Repo;

impl Repo {
    /// A method of the same name and namespace: its key names the `impl` type.
    #[cached(namespace = "golden")]
    async fn get_user(&self, id: u64, name: String) -> String {
        format!("{id}:{name}")
    }
}

#[cached(namespace = "golden", version = 3, skip(verbose))]
async fn report(year: u16, tags: Vec<String>, verbose: bool) -> Vec<u8> {
    let _ = (tags, verbose);
    vec![year as u8]
}

async fn keys(server: &RedisServer) -> Vec<String> {
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("cache:fn:golden:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.sort();
    keys
}

#[tokio::test]
async fn keys_of_known_calls_are_stable() {
    let server = RedisServer::start();
    cache_runtime::init(Config::redis(server.url()))
        .await
        .unwrap();

    // The connection is made in the background; until then calls run uncached.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while keys(&server).await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing was ever stored"
        );
        get_user(42, "a:b".into()).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    changed_type::get_user(42, "a:b".into()).await;
    Repo.get_user(42, "a:b".into()).await;
    report(2026, vec!["x".repeat(300)], true).await;
    report(2025, vec!["q3".into()], false).await;

    assert_eq!(
        keys(&server).await,
        [
            // {prefix}:fn:{namespace}:{function path}:v{version}:{type tag}:{arguments as JSON}
            // The path names the module and, for a method, the `impl` type (`::` reads `.`).
            // 3b5a1dd4 = String.
            r#"cache:fn:golden:key_golden.Repo.get_user:v0:3b5a1dd4:[42,"a:b"]"#,
            // 2a2b7e06 = u64.
            r#"cache:fn:golden:key_golden.changed_type.get_user:v0:2a2b7e06:[42,"a:b"]"#,
            r#"cache:fn:golden:key_golden.get_user:v0:3b5a1dd4:[42,"a:b"]"#,
            // Long arguments are hashed (BLAKE3) so the key stays under 250 bytes.
            // 81e029f8 = Vec<u8>; `verbose` is skipped.
            r#"cache:fn:golden:key_golden.report:v3:81e029f8:#7286f56bbef6d1932c4530f27b569925"#,
            r#"cache:fn:golden:key_golden.report:v3:81e029f8:[2025,["q3"]]"#,
        ]
    );
}
