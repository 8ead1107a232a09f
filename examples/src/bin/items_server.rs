//! The items web API: SQLite behind axum handlers cached with `#[cached]`.
//!
//! `cargo run -p cache-examples --bin items_server`
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `PORT` | port to listen on (`0`: any free port) | 8000 |
//! | `HOST` | address to listen on | 127.0.0.1 |
//! | `DATABASE_URL` | `sqlite:///tmp/items.db` (shared by several processes) | a fresh in-memory database |
//! | `REDIS_URL` | Redis, e.g. `redis://127.0.0.1:6379` | the in-memory cache |
//! | `CACHE_L1` | `0`: Redis only, no in-process L1 | L1 on with Redis |
//! | `RUST_LOG` | log filter | `info` |
//!
//! Prints `listening on http://ADDR` once it accepts connections.

use std::io::Write;

use cache_examples::items::{Db, router};
use cache_runtime::{Config, L1};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();

    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let port: u16 = match env("PORT") {
        Some(p) => p
            .trim()
            .parse()
            .map_err(|_| format!("PORT {p:?} is not a port number"))?,
        None => 8000,
    };
    let host = env("HOST").unwrap_or_else(|| "127.0.0.1".into());

    let config = match env("REDIS_URL") {
        None => {
            tracing::info!("cache: in-memory (set REDIS_URL for Redis)");
            Config::memory()
        }
        Some(url) if env("CACHE_L1").as_deref() == Some("0") => {
            tracing::info!("cache: Redis, no L1");
            Config::redis(url)
        }
        Some(url) => {
            tracing::info!("cache: Redis with an in-process L1");
            Config::redis(url).with_l1(L1::default())
        }
    };
    cache_runtime::init(config).await?;

    let database_url = env("DATABASE_URL");
    let db = Db::open(database_url.as_deref())?;
    tracing::info!(
        database = database_url.as_deref().unwrap_or("in-memory"),
        "database ready"
    );

    let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    std::io::stdout().flush()?;
    tracing::info!(%addr, "items_server up");
    axum::serve(listener, router(db))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down");
        })
        .await?;
    // Invalidations kept while Redis was unreachable must not be lost with the process.
    if let Ok(cache) = cache_runtime::cache() {
        let left = cache.flush_pending(std::time::Duration::from_secs(5)).await;
        if left > 0 {
            tracing::warn!(left, "invalidations still pending at exit");
        }
    }
    Ok(())
}
