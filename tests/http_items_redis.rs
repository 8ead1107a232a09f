//! The items_server API on the tiered Redis backend (a throwaway `redis-server`) over an
//! SQLite file, as `items_server` runs with `REDIS_URL` and `DATABASE_URL`.

mod http_items_app;

use cache_runtime::{Config, L1};
use cache_tests::{RedisServer, answered_by_l1};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_api_on_tiered_redis_and_sqlite_file() {
    let server = RedisServer::start();
    cache_runtime::init(Config::redis(server.url()).with_l1(L1::default()))
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("http-items-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("items.db");
    let _ = std::fs::remove_file(&file);
    let db =
        cache_examples::items::Db::open(Some(&format!("sqlite://{}", file.display()))).unwrap();
    // A second connection to the same file sees the seed once (no double seeding).
    let again =
        cache_examples::items::Db::open(Some(&format!("sqlite://{}", file.display()))).unwrap();
    assert_eq!(again.list().await.unwrap().len(), 3);
    let base = http_items_app::serve(db).await;
    http_items_app::items_api(&base).await;
    // The item's hits come from the L1: Redis runs no read for one.
    let client = reqwest::Client::new();
    answered_by_l1(&server, async || {
        let r = client.get(format!("{base}/items/1")).send().await.unwrap();
        r.headers().get("x-cache").is_some_and(|v| v == "HIT")
    })
    .await;
    assert_eq!(cache_runtime::stats().total.errors, 0);
    let _ = std::fs::remove_dir_all(&dir);
}
