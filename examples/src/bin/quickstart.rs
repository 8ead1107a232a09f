//! Quickstart: a slow function cached with `#[cached]` on the in-memory backend.
//!
//! `cargo run -p cache-examples --bin quickstart`

use std::time::{Duration, Instant};

use cache_runtime::{Config, cached};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

#[derive(Debug)]
struct DbError;

/// Pretends to be a slow database query.
#[cached(expire = 60, namespace = "user")]
async fn get_user(id: u64) -> Result<User, DbError> {
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(User {
        id,
        name: format!("user {id}"),
    })
}

async fn timed(label: &str, id: u64) {
    let start = Instant::now();
    let user = get_user(id).await;
    println!("{label:<28} {:>10.3?}  {user:?}", start.elapsed());
}

#[tokio::main]
async fn main() -> Result<(), cache_runtime::Error> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    cache_runtime::init(Config::memory()).await?;

    timed("first call (miss)", 42).await;
    timed("second call (hit)", 42).await;
    get_user_invalidate(42).await?;
    timed("after get_user_invalidate", 42).await;
    timed("hit again", 42).await;
    cache_runtime::invalidate_namespace("user").await?;
    timed("after invalidate_namespace", 42).await;

    let stats = cache_runtime::stats();
    println!(
        "\nstats: {}",
        serde_json::to_string_pretty(&stats).unwrap_or_default()
    );
    Ok(())
}
