//! The routes and handlers of the items API.

use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use cache_runtime::cached;
use serde_json::{Value, json};

use super::{ApiError, Db, Item, NewItem};

/// The API's router over `db`.
pub fn router(db: Db) -> Router {
    Router::new()
        .route("/items", get(list_items).post(create_item))
        .route(
            "/items/{id}",
            get(get_item).put(update_item).delete(delete_item),
        )
        .route("/cached-time", get(cached_time))
        .route("/stats", get(stats))
        .with_state(db)
}

/// `GET /items`: every item. Clients revalidate every time (`Cache-Control: no-cache`): a
/// 304 from the server's cache, never a list older than the last write.
#[cached(http(route = "/items"), expire = 60, namespace = "items")]
async fn list_items(State(db): State<Db>) -> Result<Json<Vec<Item>>, ApiError> {
    Ok(Json(db.list().await?))
}

/// `GET /items/{id}`: one item, 404 when unknown (404s are not cached).
#[cached(http(route = "/items/{id}"), expire = 60, namespace = "items")]
async fn get_item(Path(id): Path<u64>, State(db): State<Db>) -> Result<Json<Item>, ApiError> {
    db.get(id).await?.map(Json).ok_or(ApiError::NotFound(id))
}

/// Drops the cached responses an item change makes stale (every variant of the item's path
/// and of the list's), in every process.
///
/// An error means Redis could not be reached: the invalidation is kept and re-applied when it
/// answers, and this process bypasses the entries meanwhile; the write itself succeeded, so
/// the request does too, and the failure is logged.
async fn invalidate_item(id: u64) {
    for result in [
        get_item_invalidate(Path(id)).await,
        list_items_invalidate().await,
    ] {
        if let Err(error) = result {
            tracing::warn!(id, %error, "invalidation not confirmed; it is re-applied when redis answers");
        }
    }
}

/// `POST /items`: creates an item (201).
async fn create_item(
    State(db): State<Db>,
    body: Result<Json<NewItem>, JsonRejection>,
) -> Result<(StatusCode, Json<Item>), ApiError> {
    let Json(new) = body?;
    new.validate()?;
    let item = db.create(new).await?;
    invalidate_item(item.id).await;
    tracing::info!(id = item.id, "item created");
    Ok((StatusCode::CREATED, Json(item)))
}

/// `PUT /items/{id}`: replaces an item.
async fn update_item(
    Path(id): Path<u64>,
    State(db): State<Db>,
    body: Result<Json<NewItem>, JsonRejection>,
) -> Result<Json<Item>, ApiError> {
    let Json(new) = body?;
    new.validate()?;
    let item = db.update(id, new).await?.ok_or(ApiError::NotFound(id))?;
    invalidate_item(id).await;
    tracing::info!(id, "item updated");
    Ok(Json(item))
}

/// `DELETE /items/{id}`: deletes an item (204).
async fn delete_item(Path(id): Path<u64>, State(db): State<Db>) -> Result<StatusCode, ApiError> {
    if !db.delete(id).await? {
        return Err(ApiError::NotFound(id));
    }
    invalidate_item(id).await;
    tracing::info!(id, "item deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /cached-time`: the time, computed at most every 30 s (the seeds' pattern, with the
/// manual cache API so the body can say whether it came from the cache).
async fn cached_time() -> Json<Value> {
    let Ok(cache) = cache_runtime::cache() else {
        return Json(json!({ "time": super::time::now_utc(), "cached": false }));
    };
    if let Some(time) = cache.get::<String>("time", "current_time").await {
        return Json(json!({ "time": time, "cached": true }));
    }
    let time = super::time::now_utc();
    let _ = cache
        .set("time", "current_time", &time, Some(Duration::from_secs(30)))
        .await;
    Json(json!({ "time": time, "cached": false }))
}

/// `GET /stats`: the cache's statistics.
async fn stats() -> Json<cache_runtime::Stats> {
    Json(cache_runtime::stats())
}
