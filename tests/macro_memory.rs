//! `#[cached]` and the manual API on the memory backend, checked from outside as a user would.
//!
//! The global cache is initialised once for this binary ([`setup`]); each test uses its own
//! namespace, so tests running in parallel do not see each other's entries or statistics.
//! Whether a call hit is judged by counting body runs, never by timing. TTLs run on tokio's
//! paused clock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use cache_runtime::{Cache, CacheValue, CodecKind, Config, StatsSnapshot, cached};
use serde::{Deserialize, Serialize};

async fn setup() {
    static INIT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    INIT.get_or_init(|| async {
        cache_runtime::init(Config::memory())
            .await
            .expect("init the global cache")
    })
    .await;
}

async fn ns_stats(namespace: &str) -> StatsSnapshot {
    cache_runtime::stats().namespace(namespace)
}

fn runs(counter: &AtomicUsize) -> usize {
    counter.load(SeqCst)
}

// ----- miss, hit, awaited value -----------------------------------------------------------

static DOUBLE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(namespace = "t_miss_hit")]
async fn double(x: u64) -> u64 {
    DOUBLE_RUNS.fetch_add(1, SeqCst);
    x * 2
}

#[tokio::test]
async fn a_miss_runs_the_body_and_a_hit_does_not() {
    setup().await;
    assert_eq!(double(2).await, 4);
    assert_eq!(runs(&DOUBLE_RUNS), 1);
    assert_eq!(double(2).await, 4);
    assert_eq!(
        runs(&DOUBLE_RUNS),
        1,
        "second call with the same argument hits"
    );
    assert_eq!(double(3).await, 6);
    assert_eq!(runs(&DOUBLE_RUNS), 2, "another argument is another entry");
    let s = ns_stats("t_miss_hit").await;
    assert_eq!((s.hits, s.misses, s.inserts), (1, 2, 2));
}

static AWAITED_RUNS: AtomicUsize = AtomicUsize::new(0);

/// The value only exists after the body's `.await`s: a cached future would re-run them.
#[cached(namespace = "t_awaited")]
async fn awaited(id: u64) -> String {
    tokio::task::yield_now().await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move { tx.send(format!("computed {id}")).unwrap() });
    let value = rx.await.unwrap();
    AWAITED_RUNS.fetch_add(1, SeqCst);
    value
}

#[tokio::test]
async fn the_awaited_value_is_cached_not_the_future() {
    setup().await;
    assert_eq!(awaited(1).await, "computed 1");
    assert_eq!(awaited(1).await, "computed 1");
    assert_eq!(runs(&AWAITED_RUNS), 1);
}

// ----- Result and Option ---------------------------------------------------------------------

static PARSE_RUNS: AtomicUsize = AtomicUsize::new(0);
static PARSE_FAILS: AtomicBool = AtomicBool::new(true);

#[derive(Debug, PartialEq)]
struct ParseError; // neither Clone nor Serialize: errors are never stored

#[cached(namespace = "t_result")]
async fn parse(input: String) -> Result<u32, ParseError> {
    PARSE_RUNS.fetch_add(1, SeqCst);
    if PARSE_FAILS.load(SeqCst) {
        return Err(ParseError);
    }
    input.parse().map_err(|_| ParseError)
}

#[tokio::test]
async fn only_ok_is_cached_and_errors_are_returned() {
    setup().await;
    assert_eq!(parse("7".into()).await, Err(ParseError));
    assert_eq!(parse("7".into()).await, Err(ParseError));
    assert_eq!(runs(&PARSE_RUNS), 2, "an Err is not stored");
    PARSE_FAILS.store(false, SeqCst);
    assert_eq!(parse("7".into()).await, Ok(7));
    PARSE_FAILS.store(true, SeqCst);
    assert_eq!(parse("7".into()).await, Ok(7), "the Ok is stored");
    assert_eq!(runs(&PARSE_RUNS), 3);
    let s = ns_stats("t_result").await;
    assert_eq!((s.hits, s.misses, s.inserts), (1, 3, 1));
}

static FIND_RUNS: AtomicUsize = AtomicUsize::new(0);
static FIND_NONE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(namespace = "t_option")]
async fn find(id: u64) -> Option<u64> {
    FIND_RUNS.fetch_add(1, SeqCst);
    id.is_multiple_of(2).then_some(id)
}

#[cached(namespace = "t_option_cache_none", cache_none)]
async fn find_cache_none(id: u64) -> Option<u64> {
    FIND_NONE_RUNS.fetch_add(1, SeqCst);
    id.is_multiple_of(2).then_some(id)
}

#[tokio::test]
async fn none_is_not_cached_unless_cache_none() {
    setup().await;
    assert_eq!(find(1).await, None);
    assert_eq!(find(1).await, None);
    assert_eq!(runs(&FIND_RUNS), 2, "None is not stored");
    assert_eq!(find(2).await, Some(2));
    assert_eq!(find(2).await, Some(2));
    assert_eq!(runs(&FIND_RUNS), 3, "Some is stored");

    assert_eq!(find_cache_none(1).await, None);
    assert_eq!(find_cache_none(1).await, None);
    assert_eq!(runs(&FIND_NONE_RUNS), 1, "cache_none stores None");
    assert_eq!(find_cache_none(2).await, Some(2));
    assert_eq!(find_cache_none(2).await, Some(2));
    assert_eq!(runs(&FIND_NONE_RUNS), 2);
}

// ----- methods, generics, skip, key, version ---------------------------------------------------

static METHOD_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Not `Serialize`: `&self` can only work because it is not part of the key.
struct Repo {
    name: &'static str,
}

impl Repo {
    #[cached(namespace = "t_method")]
    async fn describe(&self, id: u64) -> String {
        METHOD_RUNS.fetch_add(1, SeqCst);
        format!("{}:{id}", self.name)
    }
}

#[tokio::test]
async fn methods_do_not_key_on_self() {
    setup().await;
    assert_eq!(Repo { name: "a" }.describe(1).await, "a:1");
    assert_eq!(
        Repo { name: "b" }.describe(1).await,
        "a:1",
        "self is not in the key"
    );
    assert_eq!(Repo { name: "b" }.describe(2).await, "b:2");
    assert_eq!(runs(&METHOD_RUNS), 2);
    Repo { name: "c" }.describe_invalidate(1).await.unwrap();
    assert_eq!(Repo { name: "c" }.describe(1).await, "c:1");
}

static WRAP_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(namespace = "t_generic")]
async fn wrap<T: CacheValue>(value: T) -> Vec<T> {
    WRAP_RUNS.fetch_add(1, SeqCst);
    vec![value]
}

static LOAD_RUNS: AtomicUsize = AtomicUsize::new(0);

struct Store<T>(std::marker::PhantomData<T>);

impl<T: CacheValue + From<u8>> Store<T> {
    /// The value type comes from the `impl`, not from the function's own generics.
    #[cached(namespace = "t_generic_impl")]
    async fn load(&self, id: u8) -> T {
        LOAD_RUNS.fetch_add(1, SeqCst);
        T::from(id)
    }
}

#[tokio::test]
async fn generic_functions_keep_one_entry_per_value_type() {
    setup().await;
    // Same serialized argument (`[1]`), different value types: two entries.
    assert_eq!(wrap(1u32).await, vec![1u32]);
    assert_eq!(wrap(1u64).await, vec![1u64]);
    assert_eq!(wrap(1u32).await, vec![1u32]);
    assert_eq!(wrap(1u64).await, vec![1u64]);
    assert_eq!(runs(&WRAP_RUNS), 2);

    let (small, wide) = (
        Store::<u16>(Default::default()),
        Store::<u64>(Default::default()),
    );
    assert_eq!(small.load(9).await, 9u16);
    assert_eq!(wide.load(9).await, 9u64);
    assert_eq!(small.load(9).await, 9u16);
    assert_eq!(wide.load(9).await, 9u64);
    assert_eq!(
        runs(&LOAD_RUNS),
        2,
        "the two types must not evict each other"
    );
}

static SKIP_RUNS: AtomicUsize = AtomicUsize::new(0);

struct Db {
    name: &'static str,
}

#[cached(namespace = "t_skip", skip(db))]
async fn user_name(db: &Db, id: u64) -> String {
    SKIP_RUNS.fetch_add(1, SeqCst);
    format!("{}:{id}", db.name)
}

#[tokio::test]
async fn skipped_arguments_are_not_part_of_the_key() {
    setup().await;
    assert_eq!(user_name(&Db { name: "primary" }, 1).await, "primary:1");
    assert_eq!(user_name(&Db { name: "replica" }, 1).await, "primary:1");
    assert_eq!(user_name(&Db { name: "replica" }, 2).await, "replica:2");
    assert_eq!(runs(&SKIP_RUNS), 2);
    user_name_invalidate(&Db { name: "any" }, 1).await.unwrap();
    assert_eq!(user_name(&Db { name: "replica" }, 1).await, "replica:1");
}

static PAGE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(namespace = "t_key", key = (lang, slug.to_lowercase()))]
async fn page(slug: String, lang: &str, request_id: u64) -> String {
    PAGE_RUNS.fetch_add(1, SeqCst);
    format!("{lang}/{slug}#{request_id}")
}

#[tokio::test]
async fn a_key_expression_replaces_the_default_key() {
    setup().await;
    assert_eq!(page("Home".into(), "en", 1).await, "en/Home#1");
    assert_eq!(page("HOME".into(), "en", 2).await, "en/Home#1");
    assert_eq!(page("home".into(), "de", 3).await, "de/home#3");
    assert_eq!(runs(&PAGE_RUNS), 2);
    page_invalidate("hOmE".into(), "en", 99).await.unwrap();
    assert_eq!(page("home".into(), "en", 4).await, "en/home#4");
}

/// Three deployments of one function: the old code, the new code with a new value shape
/// (`version = 2`), and the old code again without a bump, which shares the old entries.
/// The key names a function by its path, so the three are declared in sibling blocks of one
/// function, where they have the same path, as one function has in successive builds.
async fn profile(deployment: u8, id: u64) -> String {
    match deployment {
        0 => {
            #[cached(namespace = "t_version")]
            async fn profile(id: u64) -> String {
                format!("v0 shape {id}")
            }
            profile(id).await
        }
        2 => {
            #[cached(namespace = "t_version", version = 2)]
            async fn profile(id: u64) -> String {
                format!("v2 shape {id}")
            }
            profile(id).await
        }
        _ => {
            #[cached(namespace = "t_version")]
            async fn profile(id: u64) -> String {
                format!("v0 again {id}")
            }
            profile(id).await
        }
    }
}

#[tokio::test]
async fn a_version_bump_retires_old_entries() {
    setup().await;
    assert_eq!(profile(0, 1).await, "v0 shape 1");
    assert_eq!(profile(2, 1).await, "v2 shape 1", "v2 ignores v0 entries");
    assert_eq!(
        profile(1, 1).await,
        "v0 shape 1",
        "without a bump, the same function in another build shares the entries"
    );
}

static ITEM_U32_RUNS: AtomicUsize = AtomicUsize::new(0);
static ITEM_STRING_RUNS: AtomicUsize = AtomicUsize::new(0);

/// One function before and after its return type changed (declared in sibling blocks, where
/// they have the same path, as in successive builds; see `profile`).
async fn item(new_type: bool, id: u64) -> String {
    if new_type {
        #[cached(namespace = "t_type")]
        async fn item(id: u64) -> String {
            ITEM_STRING_RUNS.fetch_add(1, SeqCst);
            format!("item {id}")
        }
        item(id).await
    } else {
        #[cached(namespace = "t_type")]
        async fn item(id: u64) -> u32 {
            ITEM_U32_RUNS.fetch_add(1, SeqCst);
            id as u32
        }
        item(id).await.to_string()
    }
}

#[tokio::test]
async fn a_changed_return_type_gets_its_own_key() {
    setup().await;
    assert_eq!(item(false, 5).await, "5");
    assert_eq!(item(true, 5).await, "item 5");
    // Both are still there: had they shared a key, the second store would have replaced the
    // first entry and the next u32 call would miss.
    assert_eq!(item(false, 5).await, "5");
    assert_eq!(item(true, 5).await, "item 5");
    assert_eq!((runs(&ITEM_U32_RUNS), runs(&ITEM_STRING_RUNS)), (1, 1));
    let s = ns_stats("t_type").await;
    assert_eq!((s.hits, s.misses), (2, 2));
}

// ----- namespaces and invalidation --------------------------------------------------------

mod defaults {
    use super::*;
    pub static RUNS: AtomicUsize = AtomicUsize::new(0);
    #[cached]
    pub async fn plain(x: u64) -> u64 {
        RUNS.fetch_add(1, SeqCst);
        x
    }
}

#[tokio::test]
async fn the_default_namespace_is_the_module_path_and_function_name() {
    setup().await;
    let namespace = "macro_memory::defaults::plain";
    assert_eq!(defaults::plain(1).await, 1);
    assert_eq!(defaults::plain(1).await, 1);
    let s = ns_stats(namespace).await;
    assert_eq!((s.hits, s.misses), (1, 1));
    cache_runtime::invalidate_namespace(namespace)
        .await
        .unwrap();
    assert_eq!(defaults::plain(1).await, 1);
    assert_eq!(runs(&defaults::RUNS), 2);
}

static INV_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(namespace = "t_invalidate")]
async fn square(x: u64, label: String) -> String {
    INV_RUNS.fetch_add(1, SeqCst);
    format!("{label}={}", x * x)
}

#[tokio::test]
async fn the_invalidate_companion_drops_exactly_that_call() {
    setup().await;
    square(2, "a".into()).await;
    square(3, "a".into()).await;
    assert_eq!(runs(&INV_RUNS), 2);
    square_invalidate(2, "a".into()).await.unwrap();
    square_invalidate(3, "other label".into()).await.unwrap(); // another call: nothing to drop
    square(2, "a".into()).await;
    square(3, "a".into()).await;
    assert_eq!(runs(&INV_RUNS), 3, "only (2, \"a\") ran again");
    assert_eq!(ns_stats("t_invalidate").await.invalidations, 2);
}

static NS_A_RUNS: AtomicUsize = AtomicUsize::new(0);
static NS_B_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(namespace = "t_ns_a")]
async fn in_a(x: u64) -> u64 {
    NS_A_RUNS.fetch_add(1, SeqCst);
    x
}

#[cached(namespace = "t_ns_b")]
async fn in_b(x: u64) -> u64 {
    NS_B_RUNS.fetch_add(1, SeqCst);
    x
}

#[tokio::test]
async fn invalidate_namespace_drops_that_namespace_only() {
    setup().await;
    for x in 0..5 {
        in_a(x).await;
        in_b(x).await;
    }
    cache_runtime::invalidate_namespace("t_ns_a").await.unwrap();
    for x in 0..5 {
        in_a(x).await;
        in_b(x).await;
    }
    assert_eq!(runs(&NS_A_RUNS), 10, "every entry of t_ns_a recomputed");
    assert_eq!(runs(&NS_B_RUNS), 5, "t_ns_b untouched");
    // A value computed after the invalidation is cached again.
    in_a(0).await;
    assert_eq!(runs(&NS_A_RUNS), 10);
}

#[tokio::test]
async fn invalidate_all_on_an_instance_drops_everything() {
    let cache = Cache::new(Config::memory()).await.unwrap();
    for ns in ["x", "y"] {
        cache.set(ns, &1, &1u8, None).await.unwrap();
    }
    cache.invalidate_all().await.unwrap();
    assert_eq!(cache.get::<u8>("x", &1).await, None);
    assert_eq!(cache.get::<u8>("y", &1).await, None);
    cache.set("x", &1, &2u8, None).await.unwrap();
    assert_eq!(cache.get::<u8>("x", &1).await, Some(2), "usable afterwards");
}

// ----- TTL on tokio's clock ---------------------------------------------------------------

static TTL_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(namespace = "t_ttl", expire = 60)]
async fn short_lived(x: u64) -> u64 {
    TTL_RUNS.fetch_add(1, SeqCst);
    x
}

#[tokio::test(start_paused = true)]
async fn entries_expire_after_their_ttl() {
    setup().await;
    short_lived(1).await;
    tokio::time::advance(Duration::from_secs(59)).await;
    short_lived(1).await;
    assert_eq!(runs(&TTL_RUNS), 1, "still fresh after 59 s");
    tokio::time::advance(Duration::from_secs(2)).await;
    short_lived(1).await;
    assert_eq!(runs(&TTL_RUNS), 2, "expired after 61 s");
    short_lived(1).await;
    assert_eq!(
        runs(&TTL_RUNS),
        2,
        "the recomputed value is cached for another 60 s"
    );
}

static FOREVER_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(namespace = "t_ttl_max", expire = 18446744073709551615)]
async fn practically_forever(x: u64) -> u64 {
    FOREVER_RUNS.fetch_add(1, SeqCst);
    x
}

#[tokio::test(start_paused = true)]
async fn the_longest_ttl_neither_panics_nor_expires() {
    setup().await;
    practically_forever(1).await;
    tokio::time::advance(Duration::from_secs(10 * 365 * 24 * 3600)).await;
    practically_forever(1).await;
    assert_eq!(runs(&FOREVER_RUNS), 1);
}

#[tokio::test(start_paused = true)]
async fn the_manual_api_honours_ttls() {
    let cache = Cache::new(Config::memory()).await.unwrap();
    let ttl = Some(Duration::from_secs(10));
    cache.set("m", &"a", &"one".to_string(), ttl).await.unwrap();
    cache
        .set("m", &"b", &"two".to_string(), None)
        .await
        .unwrap();
    cache
        .set("m", &"c", &3u8, Some(Duration::MAX))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(9)).await;
    assert_eq!(cache.get::<String>("m", &"a").await.as_deref(), Some("one"));
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(cache.get::<String>("m", &"a").await, None, "expired");
    assert_eq!(cache.get::<String>("m", &"b").await.as_deref(), Some("two"));
    assert_eq!(cache.get::<u8>("m", &"c").await, Some(3));
    // The same key with another type is another entry.
    assert_eq!(cache.get::<u8>("m", &"b").await, None);

    let mut computed = 0;
    for _ in 0..2 {
        let v = cache
            .get_or_insert_with("m", &"d", ttl, async {
                computed += 1;
                4u32
            })
            .await;
        assert_eq!(v, 4);
    }
    assert_eq!(computed, 1);
    tokio::time::advance(Duration::from_secs(11)).await;
    let v = cache
        .get_or_insert_with("m", &"d", ttl, async { 5u32 })
        .await;
    assert_eq!(v, 5, "recomputed after the TTL");

    let failed: Result<u32, &str> = cache
        .get_or_try_insert_with("m", &"e", ttl, async { Err("down") })
        .await;
    assert_eq!(failed, Err("down"));
    assert_eq!(cache.get::<u32>("m", &"e").await, None, "Err not stored");
    let ok: Result<u32, &str> = cache
        .get_or_try_insert_with("m", &"e", ttl, async { Ok(6) })
        .await;
    assert_eq!(ok, Ok(6));
    assert_eq!(cache.get::<u32>("m", &"e").await, Some(6));

    cache.delete::<u32>("m", &"e").await.unwrap();
    assert_eq!(cache.get::<u32>("m", &"e").await, None);
}

// ----- statistics, errors, eviction -----------------------------------------------------------

#[tokio::test]
async fn stats_count_per_namespace_and_in_total() {
    let cache = Cache::new(Config::memory()).await.unwrap();
    assert_eq!(cache.get::<u8>("a", &1).await, None);
    cache.set("a", &1, &1u8, None).await.unwrap();
    assert_eq!(cache.get::<u8>("a", &1).await, Some(1));
    assert_eq!(cache.get::<u8>("a", &1).await, Some(1));
    cache.set("b", &1, &1u8, None).await.unwrap();
    assert_eq!(cache.get::<u8>("b", &2).await, None);
    cache.invalidate_namespace("b").await.unwrap();

    let stats = cache.stats();
    let a = stats.namespace("a");
    let b = stats.namespace("b");
    assert_eq!((a.hits, a.misses, a.inserts), (2, 1, 1));
    assert_eq!((b.hits, b.misses, b.inserts, b.invalidations), (0, 1, 1, 1));
    assert_eq!(stats.total.hits, 2);
    assert_eq!(stats.total.misses, 2);
    assert_eq!(stats.total.inserts, 2);
    assert_eq!(stats.total.invalidations, 1);
    assert_eq!(stats.namespace("never used"), StatsSnapshot::default());
    // Serializable, for a /stats endpoint.
    let json = serde_json::to_value(&stats).unwrap();
    assert_eq!(json["namespaces"]["a"]["hits"], 2);
}

/// A value whose serialization fails: it can be returned but never cached.
#[derive(Clone, Debug, PartialEq, Deserialize)]
struct Unencodable(u8);

impl Serialize for Unencodable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "this value refuses to be encoded",
        ))
    }
}

static UNENCODABLE_RUNS: AtomicUsize = AtomicUsize::new(0);
static UNKEYABLE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(namespace = "t_unencodable")]
async fn unencodable(x: u8) -> Unencodable {
    UNENCODABLE_RUNS.fetch_add(1, SeqCst);
    Unencodable(x)
}

#[cached(namespace = "t_unkeyable")]
async fn unkeyable(arg: Unencodable) -> u8 {
    UNKEYABLE_RUNS.fetch_add(1, SeqCst);
    arg.0
}

#[tokio::test]
async fn values_or_arguments_that_cannot_be_serialized_run_uncached_and_count_errors() {
    setup().await;
    for _ in 0..3 {
        assert_eq!(unencodable(1).await, Unencodable(1));
        assert_eq!(unkeyable(Unencodable(2)).await, 2);
    }
    assert_eq!(runs(&UNENCODABLE_RUNS), 3);
    assert_eq!(runs(&UNKEYABLE_RUNS), 3);
    assert_eq!(ns_stats("t_unencodable").await.errors, 3);
    assert_eq!(ns_stats("t_unkeyable").await.errors, 3);
}

#[tokio::test]
async fn values_over_max_value_bytes_are_returned_but_not_stored() {
    let cache = Cache::new(Config::memory().max_value_bytes(100))
        .await
        .unwrap();
    let big = "x".repeat(200);
    assert!(cache.set("big", &1, &big, None).await.is_err());
    let mut computed = 0;
    for _ in 0..2 {
        let v = cache
            .get_or_insert_with("big", &2, None, async {
                computed += 1;
                big.clone()
            })
            .await;
        assert_eq!(v, big);
    }
    assert_eq!(computed, 2);
    assert_eq!(cache.stats().namespace("big").oversized, 3);
}

#[tokio::test]
async fn eviction_bounds_the_entry_count() {
    let cache = Cache::new(Config::memory().max_entries(10)).await.unwrap();
    for i in 0..100u32 {
        cache.set("e", &i, &i, None).await.unwrap();
    }
    cache.run_pending_tasks().await;
    let held = cache.local_entry_count();
    let stats = cache.stats().namespace("e");
    assert!(held <= 10, "{held} entries held, bound is 10");
    assert!(held > 0);
    assert_eq!(stats.inserts, 100);
    assert_eq!(
        stats.evictions + held,
        100,
        "every entry is held or evicted"
    );
}

#[tokio::test]
async fn eviction_bounds_the_bytes() {
    // 1,000 entries may be held, but only 10,000 bytes: ~1 KB values fit nine at a time.
    let cfg = || Config::memory().max_entries(1_000).max_bytes(10_000);
    let cache = Cache::new(cfg()).await.unwrap();
    let value = "v".repeat(1_000);
    for i in 0..50u32 {
        cache.set("bytes", &i, &value, None).await.unwrap();
    }
    cache.run_pending_tasks().await;
    let held = cache.local_entry_count();
    let stats = cache.stats().namespace("bytes");
    assert!(
        (1..=10).contains(&held),
        "{held} KB-sized entries held in 10 KB"
    );
    assert_eq!(stats.evictions + held, 50);

    // The same number of small values fits: the bound is on bytes, not on count.
    let cache = Cache::new(cfg()).await.unwrap();
    for i in 0..50u32 {
        cache.set("small", &i, &(i as u8), None).await.unwrap();
    }
    cache.run_pending_tasks().await;
    assert_eq!(cache.local_entry_count(), 50);
    assert_eq!(cache.stats().namespace("small").evictions, 0);
}

// ----- configuration and codecs -------------------------------------------------------------

#[tokio::test]
async fn bad_configurations_are_rejected_with_invalid_config() {
    let bad = [
        Config::memory().max_entries(0),
        Config::memory().max_bytes(0),
        Config::memory().prefix(""),
        Config::memory().prefix("has space"),
        Config::memory().max_key_len(10),
    ];
    for config in bad {
        let err = Cache::new(config.clone()).await.unwrap_err();
        assert!(
            matches!(err, cache_runtime::Error::InvalidConfig(_)),
            "{config:?} gave {err:?}"
        );
        assert!(!err.to_string().is_empty());
    }
}

#[tokio::test]
async fn the_json_codec_works_and_reports_what_it_cannot_encode() {
    use cache_runtime::codec::{Codec, Json};
    let mut bytes = Vec::new();
    let value = BTreeMap::from([("a".to_string(), vec![1u8, 2])]);
    Json::encode_into(&value, &mut bytes).unwrap();
    assert_eq!(bytes, br#"{"a":[1,2]}"#);
    assert_eq!(
        Json::decode::<BTreeMap<String, Vec<u8>>>(&bytes).unwrap(),
        value
    );
    assert!(Json::decode::<u8>(b"not json").is_err());

    let cache = Cache::new(Config::memory().codec(CodecKind::Json))
        .await
        .unwrap();
    cache.set("j", &1, &value, None).await.unwrap();
    assert_eq!(
        cache.get::<BTreeMap<String, Vec<u8>>>("j", &1).await,
        Some(value)
    );
    // JSON objects need string keys: this map cannot be encoded, so it is not stored.
    let tuple_keys = BTreeMap::from([((1u8, 2u8), 3u8)]);
    assert!(cache.set("j", &2, &tuple_keys, None).await.is_err());
    assert_eq!(cache.stats().namespace("j").errors, 1);
}
