//! The promise across two tiered instances: a `set`, a key, namespace or whole-cache invalidation
//! through one is never answered with the old value by the other once it returned; concurrent reads
//! keep no replaced value; a plain instance's write and a dropped `set` reach the others' L1s too.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_in_one_instance_replaces_the_value_in_the_others_l1() {
    let server = RedisServer::start();
    let (a, b) = pair(&server).await;
    for round in 0..20u32 {
        let old = format!("old {round}");
        let new = format!("new {round}");
        a.set("item", &round, &old, None).await.unwrap();
        assert_eq!(b.get::<String>("item", &round).await, Some(old.clone()));
        l1_holds(&server, &old, async || {
            b.get::<String>("item", &round).await.unwrap_or_default()
        })
        .await;
        a.set("item", &round, &new, None).await.unwrap();
        replaced("set", &old, &new, async || {
            b.get::<String>("item", &round).await.unwrap_or_default()
        })
        .await;
    }
    b.run_pending_tasks().await;
    assert!(b.local_entry_count() > 0, "b's L1 was used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_invalidation_then_recompute_reaches_the_other_instance() {
    let server = RedisServer::start();
    let (a, b) = pair(&server).await;
    let db = Db::default();
    for id in 0..20u64 {
        db.put(id, "old");
        assert_eq!(load(&a, &db, "item", id).await, "old");
        assert_eq!(load(&b, &db, "item", id).await, "old");
        db.put(id, "new");
        // Served from b's L1 until invalidated: the update is not seen yet.
        l1_holds(&server, "old", async || load(&b, &db, "item", id).await).await;
        a.delete::<String>("item", &id).await.unwrap();
        replaced("delete", "old", "new", async || {
            load(&b, &db, "item", id).await
        })
        .await;
        // a recomputes and stores; b keeps the new value.
        assert_eq!(load(&a, &db, "item", id).await, "new");
        assert_eq!(load(&b, &db, "item", id).await, "new");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_invalidation_reaches_the_other_instance() {
    let server = RedisServer::start();
    let (a, b) = pair(&server).await;
    let db = Db::default();
    for round in 0..5 {
        let (old, new) = (format!("old {round}"), format!("new {round}"));
        let ids = round * 100..round * 100 + 20;
        for id in ids.clone() {
            db.put(id, &old);
            load(&a, &db, "item", id).await;
            assert_eq!(load(&b, &db, "item", id).await, old);
            // Another namespace, untouched by the invalidation.
            load(&b, &db, "other", id).await;
        }
        for id in ids.clone() {
            db.put(id, &new);
            l1_holds(&server, &old, async || load(&b, &db, "item", id).await).await;
        }
        a.invalidate_namespace("item").await.unwrap();
        for id in ids.clone() {
            replaced("namespace", &old, &new, async || {
                load(&b, &db, "item", id).await
            })
            .await;
        }
        // "other" still answers from the cache (the old value).
        assert_eq!(load(&b, &db, "other", ids.start).await, old);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_all_reaches_the_other_instance() {
    let server = RedisServer::start();
    let (a, b) = pair(&server).await;
    let db = Db::default();
    for round in 0..5 {
        let (old, new) = (format!("old {round}"), format!("new {round}"));
        let ids = round * 100..round * 100 + 10;
        for id in ids.clone() {
            db.put(id, &old);
            for ns in ["x", "y"] {
                load(&a, &db, ns, id).await;
                assert_eq!(load(&b, &db, ns, id).await, old);
            }
        }
        for id in ids.clone() {
            db.put(id, &new);
            for ns in ["x", "y"] {
                l1_holds(&server, &old, async || load(&b, &db, ns, id).await).await;
            }
        }
        a.invalidate_all().await.unwrap();
        for id in ids.clone() {
            for ns in ["x", "y"] {
                replaced("invalidate_all", &old, &new, async || {
                    load(&b, &db, ns, id).await
                })
                .await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_never_keep_a_value_that_was_replaced() {
    // Readers in b race with writers in a: once a's set returned and the bus delay passed, b
    // must not hold the old value in its L1 (a fill that overlapped the message is dropped).
    let server = RedisServer::start();
    let (a, b) = pair(&server).await;
    for round in 0..30u32 {
        let (old, new) = (format!("old {round}"), format!("new {round}"));
        a.set("race", &0, &old, None).await.unwrap();
        l1_holds(&server, &old, async || {
            b.get::<String>("race", &0).await.unwrap_or_default()
        })
        .await;
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let b = b.clone();
                tokio::spawn(async move {
                    for _ in 0..20 {
                        let _ = b.get::<String>("race", &0).await;
                    }
                })
            })
            .collect();
        a.set("race", &0, &new, None).await.unwrap();
        for r in readers {
            r.await.unwrap();
        }
        replaced("race", &old, &new, async || {
            b.get::<String>("race", &0).await.unwrap_or_default()
        })
        .await;
    }
}

/// A plain Redis instance (no L1) sharing the prefix with tiered ones is a bus member: its
/// write must reach their L1s like a tiered instance's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_instance_write_reaches_a_tiered_l1() {
    let server = RedisServer::start();
    let tiered_b = Cache::new(tiered(&server)).await.unwrap();
    let plain = Cache::new(Config::redis(server.url()).prefix("t").timeout(TIMEOUT))
        .await
        .unwrap();
    wait_until("bus up", Duration::from_secs(5), async || {
        tiered_b.bus_healthy() && plain.bus_healthy()
    })
    .await;
    plain
        .set("mixed", &1, &"old".to_owned(), None)
        .await
        .unwrap();
    l1_holds(&server, "old", async || {
        tiered_b
            .get::<String>("mixed", &1)
            .await
            .unwrap_or_default()
    })
    .await;
    plain
        .set("mixed", &1, &"new".to_owned(), None)
        .await
        .unwrap();
    replaced("plain set", "old", "new", async || {
        tiered_b
            .get::<String>("mixed", &1)
            .await
            .unwrap_or_default()
    })
    .await;
}

/// A tiered `set` dropped after its first poll still replaces the value in the other
/// instance's L1: the write and its announcement complete in a task of the library's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_set_still_replaces_the_value_in_the_others_l1() {
    let server = RedisServer::start();
    let (a, b) = pair(&server).await;
    for round in 0..10u32 {
        a.set("dropped", &round, &"old".to_owned(), None)
            .await
            .unwrap();
        l1_holds(&server, "old", async || {
            b.get::<String>("dropped", &round).await.unwrap_or_default()
        })
        .await;
        let new = "new".to_owned();
        let set = a.set("dropped", &round, &new, None);
        // Polled once, then dropped.
        let _ = tokio::time::timeout(Duration::ZERO, set).await;
        wait_until(
            "the other instance reads the new value",
            Duration::from_secs(5),
            async || b.get::<String>("dropped", &round).await.as_deref() == Some("new"),
        )
        .await;
        replaced("dropped set", "old", "new", async || {
            b.get::<String>("dropped", &round).await.unwrap_or_default()
        })
        .await;
    }
}
