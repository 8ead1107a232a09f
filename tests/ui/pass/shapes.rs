//! Every supported shape compiles without a warning.
#![deny(warnings, missing_docs)]

use cache_runtime::cached;
use serde::{Deserialize, Serialize};

/// A pool-like handle that is not part of any key.
pub struct Pool;

/// A cached value.
#[derive(Clone, Serialize, Deserialize)]
pub struct User {
    /// Its id.
    pub id: u64,
}

/// Errors are returned, never cached.
#[derive(Debug)]
pub struct DbError;

/// A Result output with skip, expire, namespace and version.
#[cached(expire = 60, namespace = "user", skip(db), version = 3)]
pub async fn get_user(db: &Pool, id: u64) -> Result<User, DbError> {
    let _ = db;
    Ok(User { id })
}

/// An Option output with cache_none, a mutable binding and a tuple pattern.
#[cached(cache_none)]
pub async fn find(mut name: String, (a, b): (u8, u8)) -> Option<u64> {
    name.push('!');
    (a > b).then_some(name.len() as u64)
}

/// A key expression, with an `impl Trait` argument it covers.
#[cached(key = (lang, slug.as_ref().to_lowercase()))]
pub async fn page(slug: impl AsRef<str> + Send, lang: &str) -> String {
    format!("{lang}/{}", slug.as_ref())
}

/// A skipped `impl Trait` argument and an early `return`.
#[cached(skip(log))]
pub async fn parse(log: impl Fn(&str) + Send, input: String) -> Result<u32, String> {
    log("parsing");
    if input.is_empty() {
        return Err("empty".into());
    }
    let n: u32 = input.parse().map_err(|_| "not a number".to_owned())?;
    Ok(n)
}

/// A generic function.
#[cached]
pub async fn wrap<T>(value: T) -> Vec<T>
where
    T: Clone + Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    vec![value]
}

/// A unit output.
#[cached(expire = 1)]
pub async fn touch(id: u64) {
    let _ = id;
}

/// A repository with cached methods.
pub struct Repo<T>(std::marker::PhantomData<T>);

impl<T: Default + Clone + Serialize + serde::de::DeserializeOwned + Send + Sync + 'static> Repo<T> {
    /// `&self` is not part of the key; the value type comes from the impl.
    #[cached(namespace = "repo")]
    pub async fn load(&self, id: u64) -> T {
        let _ = id;
        T::default()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    cache_runtime::init(cache_runtime::Config::memory()).await.unwrap();
    assert_eq!(get_user(&Pool, 1).await.unwrap().id, 1);
    get_user_invalidate(&Pool, 1).await.unwrap();
    assert_eq!(find("x".into(), (2, 1)).await, Some(2));
    find_invalidate("x".into(), (2, 1)).await.unwrap();
    assert_eq!(page("Home", "en").await, "en/Home");
    page_invalidate("HOME", "en").await.unwrap();
    assert_eq!(parse(|_| {}, "7".into()).await, Ok(7));
    parse_invalidate(|_| {}, "7".into()).await.unwrap();
    assert_eq!(wrap(5u8).await, vec![5]);
    wrap_invalidate(5u8).await.unwrap();
    touch(1).await;
    touch_invalidate(1).await.unwrap();
    let repo = Repo::<String>(std::marker::PhantomData);
    assert_eq!(repo.load(1).await, "");
    repo.load_invalidate(1).await.unwrap();
}
