//! HTTP caching of axum handlers on the tiered backend (Redis plus an in-process L1): every
//! scenario of `http_app.rs`, in one test because the cache is process-global.

mod http_app;

use std::time::Duration;

use cache_runtime::{Config, L1};
use cache_tests::{RedisServer, answered_by_l1};
use http_app::{Ctx, x_cache};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiered_backend_speaks_http_caching() {
    let server = RedisServer::start();
    let config = Config::redis(server.url()).with_l1(L1::new(1000, Duration::from_secs(30)));
    cache_runtime::init(config).await.unwrap();
    let ctx = Ctx::new(http_app::serve().await);
    http_app::all(&ctx).await;
    // The hits come from the L1: Redis runs no read for one.
    answered_by_l1(&server, async || {
        x_cache(&ctx.get("/thing/1", &[]).await) == "HIT"
    })
    .await;
    let stats = cache_runtime::stats();
    assert_eq!(stats.total.errors, 0, "{stats:?}");
}
