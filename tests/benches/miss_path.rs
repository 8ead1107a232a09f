//! The cost of a miss on Redis, against the previous miss path's round trips, in one run on a
//! throwaway loopback `redis-server`:
//!
//! - **ours**: `Cache::get_or_insert_with` on a cold key with a body that returns at once: one
//!   `MGET` (entry + generations), one `EVALSHA` taking the fill lease, the body, one `EVALSHA`
//!   storing over the lease (plus, once per namespace, the generation `SET NX`).
//! - **previous path (floor)**: what a miss cost before fill leases, done with raw redis-rs on
//!   one multiplexed connection: the same `MGET`, then a plain `SET .. ` of the same envelope
//!   bytes.
//!
//! Rounds of 2,000 misses each, interleaved; prints each round's ratio and the median.
//! `cargo bench -p cache-tests --bench miss_path`

use std::time::{Duration, Instant};

use cache_runtime::{Cache, Config};
use cache_tests::RedisServer;
use cache_tests::fixtures::{Item, make_item};

const N: u64 = 2_000;
const ROUNDS: u64 = 7;

async fn ours(cache: &Cache, round: u64) -> Duration {
    let start = Instant::now();
    for i in 0..N {
        let id = round * N + i;
        let item: Item = cache
            .get_or_insert_with("miss", &id, None, async move { make_item(id) })
            .await;
        std::hint::black_box(item);
    }
    start.elapsed()
}

async fn previous(conn: &mut redis::aio::MultiplexedConnection, round: u64) -> Duration {
    let payload = bincode::serde::encode_to_vec(make_item(1), bincode::config::standard()).unwrap();
    let mut bytes = vec![0u8; 44];
    bytes.extend_from_slice(&payload);
    let start = Instant::now();
    for i in 0..N {
        let key = format!("cache:raw:{}", round * N + i);
        let read: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(&key)
            .arg("cache:__gen:raw")
            .arg("cache:__gen")
            .query_async(conn)
            .await
            .unwrap();
        std::hint::black_box((read, make_item(i)));
        let () = redis::cmd("SET")
            .arg(&key)
            .arg(&bytes)
            .query_async(conn)
            .await
            .unwrap();
    }
    start.elapsed()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let server = RedisServer::start();
    let cache = Cache::new(Config::redis(server.url())).await.unwrap();
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // Warm up: connections, scripts loaded, generations created.
    ours(&cache, 1000).await;
    previous(&mut conn, 1000).await;
    let mut ratios = Vec::new();
    for round in 0..ROUNDS {
        let a = ours(&cache, round).await;
        let b = previous(&mut conn, round).await;
        let ratio = a.as_secs_f64() / b.as_secs_f64();
        println!(
            "round {round}: ours {:.1} us/miss, previous path {:.1} us/miss, ratio {ratio:.2}",
            a.as_secs_f64() * 1e6 / N as f64,
            b.as_secs_f64() * 1e6 / N as f64
        );
        ratios.push(ratio);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "median miss-path ratio (ours / previous path): {:.2}",
        ratios[ratios.len() / 2]
    );
}
