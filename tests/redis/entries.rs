//! The behavioural suite, part two: arguments with special characters, bad entries in Redis, and
//! the limits that skip caching. Run on one node and on a Cluster by `suite!`.

use super::*;

pub(super) async fn special_characters_in_arguments_work_and_do_not_collide(servers: Servers) {
    let a = servers.cache().await;
    let b = servers.cache().await;
    let mut raw = servers.raw().await;
    let args = [
        "a:b",
        "a",
        "b",
        "a*",
        "*",
        "{a}",
        "{",
        "}",
        "}{",
        "{user}:1",
        "a b",
        " ",
        "",
        "ü",
        "日本語",
        "🦀 crab",
        "cache:ns:x",
        "\"quoted\"",
        "back\\slash",
        "new\nline",
    ];
    let runs = Runs::default();
    let mut keys = std::collections::BTreeSet::new();
    for (i, arg) in args.iter().enumerate() {
        let v = a
            .get_or_insert_with("odd", arg, None, runs.body(format!("value {i}")))
            .await;
        assert_eq!(v, format!("value {i}"));
        let key = a.key_for::<String>("odd", arg).unwrap();
        assert!(raw.exists(&key).await, "{key:?} stored");
        keys.insert(key);
    }
    // Separators inside tuple arguments do not collide either.
    a.set("odd", &("a:b", "c"), &"left".to_string(), None)
        .await
        .unwrap();
    a.set("odd", &("a", "b:c"), &"right".to_string(), None)
        .await
        .unwrap();
    assert_eq!(keys.len(), args.len());
    assert_eq!(runs.get(), args.len());
    for (i, arg) in args.iter().enumerate() {
        assert_eq!(
            b.get::<String>("odd", arg).await,
            Some(format!("value {i}")),
            "{arg:?}"
        );
    }
    assert_eq!(
        b.get::<String>("odd", &("a:b", "c")).await.as_deref(),
        Some("left")
    );
    assert_eq!(
        b.get::<String>("odd", &("a", "b:c")).await.as_deref(),
        Some("right")
    );

    // Namespaces with odd characters invalidate independently.
    for ns in ["ns {1}:*ü", "ns {1}", "ns"] {
        a.set(ns, &1, &ns.to_string(), None).await.unwrap();
    }
    b.invalidate_namespace("ns {1}:*ü").await.unwrap();
    assert_eq!(a.get::<String>("ns {1}:*ü", &1).await, None);
    assert_eq!(
        a.get::<String>("ns {1}", &1).await.as_deref(),
        Some("ns {1}")
    );
    assert_eq!(a.get::<String>("ns", &1).await.as_deref(), Some("ns"));
}

pub(super) async fn bad_entries_are_misses_counted_and_overwritten(servers: Servers) {
    let cache = servers.cache().await;
    let json = Cache::new(servers.config().codec(CodecKind::Json))
        .await
        .unwrap();
    let reader = servers.cache().await;
    let mut raw = servers.raw().await;
    let key = cache.key_for::<String>("bad", &1).unwrap();

    // A valid entry, to derive foreign variants from. The envelope is
    // magic (2) | format (1) | codec id (1) | type tag (4) | gens, timestamps | codec bytes.
    cache
        .set("bad", &1, &"valid".to_string(), None)
        .await
        .unwrap();
    let valid = raw.get(&key).await.expect("stored");
    let mut other_format = valid.clone();
    other_format[2] = other_format[2].wrapping_add(1);
    let mut trailing = valid.clone();
    trailing.push(0);
    // The same key written by a JSON-codec cache.
    json.set("bad", &1, &"json".to_string(), None)
        .await
        .unwrap();
    let other_codec = raw.get(&key).await.expect("stored");
    assert_ne!(other_codec, valid);
    // A u64 entry's bytes planted under the String key.
    cache.set("bad", &1, &7u64, None).await.unwrap();
    let other_type = raw
        .get(&cache.key_for::<u64>("bad", &1).unwrap())
        .await
        .expect("stored");

    let planted: [(&str, Vec<u8>); 7] = [
        (
            "garbage",
            b"\x00\xffthis is not a cache entry, just bytes".to_vec(),
        ),
        ("empty", Vec::new()),
        ("truncated", valid[..10].to_vec()),
        ("another envelope format", other_format),
        ("another codec", other_codec),
        ("another type", other_type),
        ("trailing bytes after the value", trailing),
    ];
    let runs = Runs::default();
    for (i, (what, bytes)) in planted.iter().enumerate() {
        raw.set(&key, bytes).await;
        let before = cache.stats().namespace("bad");
        let fresh = format!("fresh {i}");
        let got = cache
            .get_or_insert_with("bad", &1, None, runs.body(fresh.clone()))
            .await;
        assert_eq!(got, fresh, "{what}: the body's value is served");
        assert_eq!(runs.get(), i + 1, "{what}: a miss");
        let after = cache.stats().namespace("bad");
        assert_eq!(
            after.decode_errors,
            before.decode_errors + 1,
            "{what}: counted"
        );
        assert_eq!(after.errors, before.errors, "{what}: not a backend error");
        assert_ne!(raw.get(&key).await.as_ref(), Some(bytes), "{what}");
        assert_eq!(
            reader.get::<String>("bad", &1).await,
            Some(fresh),
            "{what}: overwritten with a valid entry"
        );
    }
    assert_eq!(reader.stats().total.decode_errors, 0);
}

pub(super) async fn limits_skip_caching_without_failing(servers: Servers) {
    let cache = Cache::new(servers.config().max_value_bytes(1000).max_key_len(120))
        .await
        .unwrap();
    let mut raw = servers.raw().await;
    let runs = Runs::default();
    let big = "x".repeat(5000);

    for _ in 0..2 {
        let v = cache
            .get_or_insert_with("limits", &"big", None, runs.body(big.clone()))
            .await;
        assert_eq!(v, big);
    }
    assert_eq!(runs.get(), 2, "an oversized value is not cached");
    let stats = cache.stats().namespace("limits");
    assert_eq!((stats.oversized, stats.errors, stats.inserts), (2, 0, 0));
    assert!(
        !raw.exists(&cache.key_for::<String>("limits", &"big").unwrap())
            .await
    );
    assert!(matches!(
        cache.set("limits", &"big", &big, None).await,
        Err(Error::TooLarge { what: "value", .. })
    ));

    // A small value under the same config is cached.
    for _ in 0..2 {
        cache
            .get_or_insert_with("limits", &"small", None, runs.body("s".to_string()))
            .await;
    }
    assert_eq!(runs.get(), 3);

    // Long arguments are hashed into a bounded key; different ones stay apart.
    let (long_a, long_b) = ("k".repeat(500), format!("{}z", "k".repeat(500)));
    for (arg, v) in [(&long_a, "a"), (&long_b, "b"), (&long_a, "not a")] {
        cache
            .get_or_insert_with("limits", arg, None, runs.body(v.to_string()))
            .await;
    }
    assert_eq!(runs.get(), 5, "the third call is a hit");
    let key = cache.key_for::<String>("limits", &long_a).unwrap();
    assert!(key.len() <= 120 && raw.exists(&key).await, "{key}");
    assert_eq!(
        cache.get::<String>("limits", &long_b).await.as_deref(),
        Some("b")
    );

    // A key that cannot fit even hashed: served uncached, not an error.
    let long_ns = "n".repeat(200);
    for _ in 0..2 {
        let v = cache
            .get_or_insert_with(&long_ns, &1, None, runs.body("ok".to_string()))
            .await;
        assert_eq!(v, "ok");
    }
    assert_eq!(runs.get(), 7);
}
