//! The items web API: an item store in SQLite behind axum handlers cached with `#[cached]`.
//!
//! | route | what it does |
//! |---|---|
//! | `GET /items` | the list (cached, namespace `items`) |
//! | `GET /items/{id}` | one item (cached, namespace `items`); unknown id: 404 |
//! | `POST /items` | creates `{"name", "price"}`; drops the cached list |
//! | `PUT /items/{id}` | replaces an item; drops its cached response and the list |
//! | `DELETE /items/{id}` | deletes an item; drops its cached response and the list |
//! | `GET /cached-time` | `{"time": ..., "cached": bool}`, kept 30 s |
//! | `GET /stats` | the cache's statistics |
//!
//! Writes invalidate through the cache API, so with Redis every process sharing it (and their
//! L1s, through the invalidation bus) stops serving the old response.

mod api;
mod db;
mod error;
mod time;

pub use api::router;
pub use db::{Db, Item, NewItem};
pub use error::ApiError;
