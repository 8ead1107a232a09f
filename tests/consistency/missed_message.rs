//! A write's own L1 fill after a bus outage it lived through. A tiered `set` stores in Redis,
//! announces the write and waits for the members' acknowledgements, then fills its L1. If the
//! process lost its subscription meanwhile, it may have missed another process's invalidation
//! of that very key: the recovery flushes the L1 and moves the fence, and the write's fill,
//! made under the fence from before, is dropped even though the bus is trusted again by then.
//!
//! The moments are made with real servers only: a member that cannot acknowledge (its user may
//! not `PUBLISH`) keeps the write waiting; the writer's subscription is killed (`CLIENT KILL`)
//! while the server refuses new connections (`maxclients`), so it stays deaf while another
//! process deletes the key; then the server accepts connections again.

use std::time::Duration;

use cache_runtime::{Cache, Config, L1};
use cache_tests::{RedisServer, wait_until, within};
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;

fn config(url: String) -> Config {
    // Validity term T = 2 × 200 ms + 3 s: the write waits that long for the mute member.
    Config::redis(url)
        .prefix("missed")
        .timeout(Duration::from_secs(3))
        .bus_heartbeat(Duration::from_millis(200))
        .with_l1(L1::new(100, Duration::from_secs(60)))
}

async fn admin(conn: &mut MultiplexedConnection, args: &[&str]) -> redis::Value {
    redis::cmd(args[0])
        .arg(&args[1..])
        .query_async(conn)
        .await
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// The id of `user`'s pub/sub connection.
async fn subscription_of(conn: &mut MultiplexedConnection, user: &str) -> String {
    let list: String = redis::cmd("CLIENT")
        .arg(&["LIST", "TYPE", "pubsub"])
        .query_async(conn)
        .await
        .unwrap();
    list.lines()
        .find(|l| l.contains(&format!(" user={user} ")))
        .and_then(|l| l.strip_prefix("id=")?.split(' ').next())
        .map(str::to_owned)
        .expect("the writer's subscription")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_does_not_fill_the_l1_after_its_process_missed_an_invalidation() {
    let server = RedisServer::start();
    let writer = Cache::new(config(server.user_url("writer").await))
        .await
        .unwrap();
    let other = Cache::new(config(server.url())).await.unwrap();
    let mute = Cache::new(config(server.user_url("mute").await))
        .await
        .unwrap();
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    within(Duration::from_secs(60), async {
        wait_until("bus up", Duration::from_secs(10), async || {
            writer.bus_healthy() && other.bus_healthy() && mute.bus_healthy()
        })
        .await;
        let key = writer.key_for::<String>("item", &1).unwrap();
        // A member that hears everything but can no longer answer: writes wait the term for it.
        admin(&mut conn, &["ACL", "SETUSER", "mute", "-publish"]).await;
        let write = tokio::spawn({
            let writer = writer.clone();
            async move { writer.set("item", &1, &"written".to_owned(), None).await }
        });
        wait_until(
            "the write is in Redis",
            Duration::from_secs(5),
            async || conn.exists::<_, bool>(&key).await.unwrap(),
        )
        .await;

        // The writer goes deaf: its subscription is killed and it cannot reconnect.
        cache_tests::admin::refuse_new_connections(&mut conn).await;
        let id = subscription_of(&mut conn, "writer").await;
        admin(&mut conn, &["CLIENT", "KILL", "ID", &id]).await;
        wait_until("the writer is deaf", Duration::from_secs(5), async || {
            !writer.bus_healthy()
        })
        .await;
        // Another process deletes the key; the writer misses the announcement.
        let delete = tokio::spawn({
            let other = other.clone();
            async move { other.delete::<String>("item", &1).await }
        });
        wait_until(
            "the delete is in Redis",
            Duration::from_secs(5),
            async || !conn.exists::<_, bool>(&key).await.unwrap(),
        )
        .await;

        cache_tests::admin::accept_connections(&mut conn).await;
        wait_until(
            "the writer hears again",
            Duration::from_secs(5),
            async || writer.bus_healthy(),
        )
        .await;
        assert!(
            !write.is_finished(),
            "precondition: the write was still waiting for the mute member"
        );
        write.await.unwrap().unwrap();
        delete.await.unwrap().unwrap();
        // The first read re-learns the generations the recovery forgot; the next ones would
        // find a wrongly filled entry.
        for read in 0..3 {
            assert_eq!(
                writer.get::<String>("item", &1).await,
                None,
                "read {read}: the write filled the L1 with a value another process had deleted"
            );
        }
    })
    .await;
}

/// The counterpart: with the bus trusted throughout, a write fills its own L1, so the next read
/// makes no Redis round trip (retried: a late heartbeat on a loaded machine may flush the L1
/// between the write and the read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_fills_its_own_l1_when_the_bus_stayed_trusted() {
    let server = RedisServer::start();
    let cache = Cache::new(config(server.url())).await.unwrap();
    within(Duration::from_secs(60), async {
        wait_until("bus up", Duration::from_secs(10), async || {
            cache.bus_healthy()
        })
        .await;
        for round in 0..10 {
            let value = format!("v{round}");
            cache.set("item", &1, &value, None).await.unwrap();
            let gets = server.command_calls("get").await + server.command_calls("mget").await;
            assert_eq!(cache.get::<String>("item", &1).await, Some(value));
            let after = server.command_calls("get").await + server.command_calls("mget").await;
            if after == gets {
                return;
            }
        }
        panic!("no write in ten filled its own L1");
    })
    .await;
}
