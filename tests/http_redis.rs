//! HTTP caching of axum handlers on the Redis backend (a throwaway `redis-server`): every
//! scenario of `http_app.rs`, in one test because the cache is process-global; and the Redis
//! key a response is stored under.

mod http_app;

use cache_runtime::Config;
use cache_tests::RedisServer;
use http_app::{Ctx, x_cache};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_backend_speaks_http_caching() {
    let server = RedisServer::start();
    cache_runtime::init(Config::redis(server.url()).prefix("site"))
        .await
        .unwrap();
    let ctx = Ctx::new(http_app::serve().await);
    http_app::all(&ctx).await;
    let stats = cache_runtime::stats();
    assert_eq!(stats.total.errors, 0, "{stats:?}");
    assert!(stats.namespace("things").hits > 0);
    stored_under_the_documented_key(&ctx, &server).await;
}

/// A handler's response is stored under the key `http::key::request_key` gives, which is the
/// documented `{prefix}:http:{namespace}:[method, path, sorted query, varied headers]`.
async fn stored_under_the_documented_key(ctx: &Ctx, server: &RedisServer) {
    let (path, query) = ("/thing/77", "b=2&a=1");
    let max = cache_runtime::key::DEFAULT_MAX_KEY_LEN;
    let key = cache_runtime::http::key::request_key("site", "things", max, path, Some(query), &[])
        .unwrap();
    assert_eq!(
        key,
        r#"site:http:things:["GET","/thing/77",[["a","1"],["b","2"]],[]]"#
    );
    let r = ctx.get(&format!("{path}?{query}"), &[]).await;
    assert_eq!(x_cache(&r), "MISS");
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let exists: bool = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(exists, "no entry under {key}");
}
