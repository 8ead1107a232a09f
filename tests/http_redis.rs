//! HTTP caching of axum handlers on the Redis backend (a throwaway `redis-server`): every
//! scenario of `http_app.rs`, in one test because the cache is process-global.

mod http_app;

use cache_runtime::Config;
use cache_tests::RedisServer;
use http_app::Ctx;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_backend_speaks_http_caching() {
    let server = RedisServer::start();
    cache_runtime::init(Config::redis(server.url()))
        .await
        .unwrap();
    let ctx = Ctx::new(http_app::serve().await);
    http_app::all(&ctx).await;
    let stats = cache_runtime::stats();
    assert_eq!(stats.total.errors, 0, "{stats:?}");
    assert!(stats.namespace("things").hits > 0);
}
