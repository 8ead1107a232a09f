//! The harness's operations and their slots: what each dropped future does (the manual API,
//! a `#[cached]` call, a request to a `#[cached(http)]` handler, their invalidations), the key
//! it works on, the old and new values it may leave behind, and how a slot is seeded and read.

use axum::extract::{Path, State};
use cache_runtime::{Cache, cached};
use cache_tests::Db;

use super::BoxFut;

/// The operations whose futures are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// A `#[cached]` call (global cache only).
    Cached,
    /// The generated `_invalidate` of that call (global cache only).
    CachedInvalidate,
    Get,
    Set,
    Delete,
    GetOrInsert,
    InvalidateNamespace,
    InvalidateAll,
    /// A request to the `#[cached(http)]` handler (global cache only).
    Handler,
    /// `http::invalidate_path` of that request's path (global cache only).
    HandlerInvalidate,
}

impl Op {
    /// Whether the operation retires the slot's old value once started.
    pub(super) fn invalidates(self) -> bool {
        matches!(
            self,
            Op::CachedInvalidate
                | Op::Delete
                | Op::InvalidateNamespace
                | Op::InvalidateAll
                | Op::HandlerInvalidate
        )
    }

    /// Whether the operation goes through the global cache (a read returns the loader's value).
    pub(super) fn global(self) -> bool {
        matches!(
            self,
            Op::Cached | Op::CachedInvalidate | Op::Handler | Op::HandlerInvalidate
        )
    }
}

/// The `#[cached(http)]` handler of the tiered harness: reads the slot's value from the state.
#[cached(http, namespace = "cancel_http")]
async fn cached_handler(Path(id): Path<u64>, State(db): State<Db>) -> String {
    db.get(id)
}

/// The handler's path for `id`.
fn handler_path(id: u64) -> String {
    format!("/h/{id}")
}

/// One request to [`cached_handler`] through an axum `Router` (the future a server drives,
/// dropped as a client disconnect drops it); returns the body.
async fn handler_get(db: &Db, id: u64) -> String {
    use tower_service::Service;
    let mut app = axum::Router::new()
        .route("/h/{id}", axum::routing::get(cached_handler))
        .with_state(db.clone());
    let request = axum::http::Request::get(handler_path(id))
        .body(axum::body::Body::empty())
        .unwrap();
    let response = app.call(request).await.unwrap();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(body.to_vec()).unwrap()
}

/// The `#[cached]` function of the tiered harness: reads the slot's value from `db`.
#[cached(namespace = "cancel_fn", skip(db))]
async fn cached_read(db: &Db, id: u64) -> String {
    db.get(id)
}

/// One dropped future: its operation, the key it works on and the values it may leave behind.
pub(crate) struct Slot {
    pub(super) op: Op,
    pub(super) ns: String,
    pub(super) id: u64,
    /// Drop after this many polls; `None` = at a random moment.
    pub(super) polls: Option<usize>,
}

impl Slot {
    pub(super) fn old(&self) -> String {
        format!("old-{}-{}", self.ns, self.id)
    }

    pub(super) fn new_value(&self) -> String {
        format!("new-{}-{}", self.ns, self.id)
    }

    /// The future of the operation.
    pub(super) fn future<'a>(&'a self, cache: &'a Cache, db: &'a Db) -> BoxFut<'a> {
        let (ns, id) = (self.ns.as_str(), self.id);
        match self.op {
            Op::Cached => Box::pin(async move {
                cached_read(db, id).await;
            }),
            Op::CachedInvalidate => Box::pin(async move {
                let _ = cached_read_invalidate(db, id).await;
            }),
            Op::Handler => Box::pin(async move {
                handler_get(db, id).await;
            }),
            Op::HandlerInvalidate => Box::pin(async move {
                let _ =
                    cache_runtime::http::invalidate_path("cancel_http", &handler_path(id)).await;
            }),
            Op::Get => Box::pin(async move {
                cache.get::<String>(ns, &id).await;
            }),
            Op::Set => Box::pin(async move {
                let _ = cache.set(ns, &id, &self.new_value(), None).await;
            }),
            Op::Delete => Box::pin(async move {
                let _ = cache.delete::<String>(ns, &id).await;
            }),
            Op::GetOrInsert => Box::pin(async move {
                cache
                    .get_or_insert_with(ns, &id, None, async { self.new_value() })
                    .await;
            }),
            Op::InvalidateNamespace => Box::pin(async move {
                let _ = cache.invalidate_namespace(ns).await;
            }),
            Op::InvalidateAll => Box::pin(async move {
                let _ = cache.invalidate_all().await;
            }),
        }
    }

    /// Stores the old value (Redis healthy); true once it is readable.
    pub(super) async fn seed(&self, cache: &Cache, db: &Db) -> bool {
        if self.op.global() {
            db.put(self.id, &self.old());
            self.read(cache, db).await;
            db.put(self.id, &self.new_value());
            return self.read(cache, db).await.as_ref() == Some(&self.old());
        }
        let _ = cache.set(&self.ns, &self.id, &self.old(), None).await;
        cache.get::<String>(&self.ns, &self.id).await == Some(self.old())
    }

    /// What a read returns now, through `cache`.
    pub(super) async fn read(&self, cache: &Cache, db: &Db) -> Option<String> {
        match self.op {
            Op::Cached | Op::CachedInvalidate => Some(cached_read(db, self.id).await),
            Op::Handler | Op::HandlerInvalidate => Some(handler_get(db, self.id).await),
            _ => cache.get::<String>(&self.ns, &self.id).await,
        }
    }
}
