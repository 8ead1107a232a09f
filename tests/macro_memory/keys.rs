//! Methods, generic functions, `skip`, `key = ...`, `version` and a changed return type: what a
//! call's key is made of.

use super::*;

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
