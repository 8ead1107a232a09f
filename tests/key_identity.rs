//! Two `#[cached]` functions never share entries because they share a name and a namespace:
//! the key names the function by its full path (module, impl type, trait). Manual-API keys,
//! function keys and HTTP keys live in disjoint key spaces, whatever namespace string is used.
//!
//! The global cache of this binary is the memory backend, initialised once ([`setup`]); each
//! test uses its own namespace. Whether a call hit is judged by counting body runs.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use cache_runtime::{Cache, Config, cached};
use cache_tests::RedisServer;

async fn setup() -> &'static Cache {
    static INIT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    INIT.get_or_init(|| async {
        cache_runtime::init(Config::memory())
            .await
            .expect("init the global cache")
    })
    .await;
    cache_runtime::cache().unwrap()
}

fn runs(counter: &AtomicUsize) -> usize {
    counter.load(SeqCst)
}

// ----- one name in two modules -------------------------------------------------------------

static LIVE_RUNS: AtomicUsize = AtomicUsize::new(0);
static ARCHIVED_RUNS: AtomicUsize = AtomicUsize::new(0);

mod live {
    use super::*;
    #[cached(namespace = "t_modules")]
    pub async fn count() -> u64 {
        LIVE_RUNS.fetch_add(1, SeqCst);
        1
    }
}

mod archived {
    use super::*;
    #[cached(namespace = "t_modules")]
    pub async fn count() -> u64 {
        ARCHIVED_RUNS.fetch_add(1, SeqCst);
        2
    }
}

#[tokio::test]
async fn one_name_in_two_modules_gives_two_functions() {
    setup().await;
    assert_eq!(live::count().await, 1);
    assert_eq!(archived::count().await, 2, "not live::count's entry");
    assert_eq!((live::count().await, archived::count().await), (1, 2));
    assert_eq!((runs(&LIVE_RUNS), runs(&ARCHIVED_RUNS)), (1, 1), "both hit");
    // Each `_invalidate` companion drops its own function's entry only.
    archived::count_invalidate().await.unwrap();
    assert_eq!((live::count().await, archived::count().await), (1, 2));
    assert_eq!((runs(&LIVE_RUNS), runs(&ARCHIVED_RUNS)), (1, 2));
}

// ----- one method name in two impls --------------------------------------------------------

static METHOD_RUNS: AtomicUsize = AtomicUsize::new(0);

struct Users;
struct Admins;

impl Users {
    #[cached(namespace = "t_impls")]
    async fn name(&self, id: u64) -> String {
        METHOD_RUNS.fetch_add(1, SeqCst);
        format!("user {id}")
    }
}

impl Admins {
    #[cached(namespace = "t_impls")]
    async fn name(&self, id: u64) -> String {
        METHOD_RUNS.fetch_add(1, SeqCst);
        format!("admin {id}")
    }
}

#[tokio::test]
async fn one_method_name_in_two_impls_gives_two_functions() {
    setup().await;
    assert_eq!(Users.name(7).await, "user 7");
    assert_eq!(Admins.name(7).await, "admin 7", "not Users::name's entry");
    assert_eq!(Users.name(7).await, "user 7");
    assert_eq!(Admins.name(7).await, "admin 7");
    assert_eq!(runs(&METHOD_RUNS), 2, "both hit");
    Users.name_invalidate(7).await.unwrap();
    assert_eq!(Admins.name(7).await, "admin 7");
    assert_eq!(runs(&METHOD_RUNS), 2, "Admins::name's entry is still there");
}

// ----- one trait implemented for two types -------------------------------------------------

static TRAIT_RUNS: AtomicUsize = AtomicUsize::new(0);

/// `#[cached]` adds a `<name>_invalidate` companion next to the method, so a trait whose
/// implementations are cached declares it too.
trait Describe {
    async fn describe(&self, id: u64) -> String;
    async fn describe_invalidate(&self, id: u64) -> Result<(), cache_runtime::Error>;
}

impl Describe for Users {
    #[cached(namespace = "t_traits")]
    async fn describe(&self, id: u64) -> String {
        TRAIT_RUNS.fetch_add(1, SeqCst);
        format!("user {id}")
    }
}

impl Describe for Admins {
    #[cached(namespace = "t_traits")]
    async fn describe(&self, id: u64) -> String {
        TRAIT_RUNS.fetch_add(1, SeqCst);
        format!("admin {id}")
    }
}

#[tokio::test]
async fn one_trait_method_for_two_types_gives_two_functions() {
    setup().await;
    assert_eq!(Users.describe(3).await, "user 3");
    assert_eq!(Admins.describe(3).await, "admin 3", "not Users' entry");
    assert_eq!(Users.describe(3).await, "user 3");
    assert_eq!(Admins.describe(3).await, "admin 3");
    assert_eq!(runs(&TRAIT_RUNS), 2, "both hit");
    Admins.describe_invalidate(3).await.unwrap();
    assert_eq!(Users.describe(3).await, "user 3");
    assert_eq!(runs(&TRAIT_RUNS), 2, "Users' entry is still there");
}

// ----- manual keys cannot forge other keys -------------------------------------------------

static FORGE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(namespace = "t_forge")]
async fn get_user(id: u64) -> String {
    FORGE_RUNS.fetch_add(1, SeqCst);
    format!("real {id}")
}

#[tokio::test]
async fn a_manual_namespace_cannot_reach_a_function_entry() {
    let cache = setup().await;
    assert_eq!(get_user(42).await, "real 42");
    // Namespaces spelling out a function's key head, in the old and the current key formats.
    let forged = [
        "t_forge:get_user:v0",
        "t_forge:key_identity::get_user:v0",
        "t_forge:key_identity.get_user:v0",
        "fn:t_forge:key_identity.get_user:v0",
        "t_forge%3Akey_identity.get_user:v0",
    ];
    for ns in forged {
        assert_eq!(cache.get::<String>(ns, &(42u64,)).await, None, "{ns}");
        cache
            .set(ns, &(42u64,), &format!("forged by {ns}"), None)
            .await
            .unwrap();
    }
    assert_eq!(get_user(42).await, "real 42");
    assert_eq!(runs(&FORGE_RUNS), 1, "the function's own entry hit");
    for ns in forged {
        let expected = format!("forged by {ns}");
        assert_eq!(cache.get::<String>(ns, &(42u64,)).await, Some(expected));
    }
}

/// On a real Redis: a manual entry never lands on the key of a namespace's generation (which
/// `invalidate_namespace` overwrites), whatever its namespace.
#[tokio::test]
async fn manual_entries_and_generations_do_not_share_keys_on_redis() {
    let server = RedisServer::start();
    let cache = Cache::new(Config::redis(server.url())).await.unwrap();
    let value = "entry".to_string();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while cache.set("__gen", &1u64, &value, None).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "Redis never answered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Before keys named their key space, the entry above was `cache:__gen:{tag}:1`: the
    // generation key of this namespace.
    let lookalike = format!("{}:1", cache_runtime::key::type_tag::<String>());
    cache.invalidate_namespace(&lookalike).await.unwrap();
    assert_eq!(cache.get::<String>("__gen", &1u64).await, Some(value));
    // And a manual entry in that namespace is not the other one.
    assert_eq!(cache.get::<String>(&lookalike, &1u64).await, None);
}
