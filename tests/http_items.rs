//! The items_server API (`cache_examples::items`) on the memory backend and an in-memory
//! SQLite database, through a real server and reqwest.

mod http_items_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_api_on_memory_backend() {
    cache_runtime::init(cache_runtime::Config::memory())
        .await
        .unwrap();
    let db = cache_examples::items::Db::open(None).unwrap();
    let base = http_items_app::serve(db).await;
    http_items_app::items_api(&base).await;
}
