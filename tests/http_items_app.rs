//! The items_server API scenario, shared by `http_items` (memory, in-memory SQLite) and
//! `http_items_redis` (tiered Redis, SQLite file).

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

/// Serves the items router over `db` on a free loopback port; returns the base URL.
pub async fn serve(db: cache_examples::items::Db) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = cache_examples::items::router(db);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// GETs `url` and parses its JSON body.
async fn get_json<T: serde::de::DeserializeOwned>(c: &Client, url: String) -> T {
    c.get(url).send().await.unwrap().json().await.unwrap()
}

fn x_cache(r: &reqwest::Response) -> String {
    r.headers()
        .get("x-cache")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The API of issue 4, end to end.
pub async fn items_api(base: &str) {
    let c = Client::new();
    let url = |p: &str| format!("{base}{p}");

    // Seeded items, cached.
    let r = c.get(url("/items/1")).send().await.unwrap();
    assert_eq!((r.status(), x_cache(&r).as_str()), (StatusCode::OK, "MISS"));
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let item: Value = r.json().await.unwrap();
    assert_eq!(item, json!({"id": 1, "name": "Laptop", "price": 999.99}));
    let r = c.get(url("/items/1")).send().await.unwrap();
    assert_eq!(x_cache(&r), "HIT");
    let r = c
        .get(url("/items/1"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    let list: Vec<Value> = get_json(&c, url("/items")).await;
    assert_eq!(list.len(), 3);
    assert_eq!(x_cache(&c.get(url("/items")).send().await.unwrap()), "HIT");

    // PUT invalidates the item and the list.
    let r = c
        .put(url("/items/1"))
        .json(&json!({"name": "Laptop Pro", "price": 1299.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = c
        .get(url("/items/1"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!((r.status(), x_cache(&r).as_str()), (StatusCode::OK, "MISS"));
    let item: Value = r.json().await.unwrap();
    assert_eq!(
        item,
        json!({"id": 1, "name": "Laptop Pro", "price": 1299.0})
    );
    let r = c.get(url("/items")).send().await.unwrap();
    assert_eq!(x_cache(&r), "MISS");
    let list: Vec<Value> = r.json().await.unwrap();
    assert_eq!(list[0]["name"], "Laptop Pro");

    // POST creates, and the list shows it.
    let r = c
        .post(url("/items"))
        .json(&json!({"name": "Monitor", "price": 199.5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_u64().unwrap();
    let list: Vec<Value> = get_json(&c, url("/items")).await;
    assert!(list.iter().any(|i| i["id"] == id), "{list:?}");

    // DELETE, then 404 (with a JSON error), and the list drops it.
    assert_eq!(
        x_cache(&c.get(url(&format!("/items/{id}"))).send().await.unwrap()),
        "MISS"
    );
    let r = c.delete(url(&format!("/items/{id}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = c.get(url(&format!("/items/{id}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let err: Value = r.json().await.unwrap();
    assert!(err["error"].as_str().unwrap().contains("no item"));
    let list: Vec<Value> = get_json(&c, url("/items")).await;
    assert!(!list.iter().any(|i| i["id"] == id));
    assert_eq!(
        c.put(url("/items/999"))
            .json(&json!({"name": "x", "price": 1}))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.delete(url("/items/999")).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    // Malformed bodies: 4xx with a JSON error.
    for (body, content_type, status) in [
        ("{\"name\":", "application/json", StatusCode::BAD_REQUEST),
        (
            "{\"name\": 1}",
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "{\"name\": \"\", \"price\": 1}",
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "{\"name\": \"a\", \"price\": -1}",
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("name=a", "text/plain", StatusCode::UNSUPPORTED_MEDIA_TYPE),
    ] {
        let r = c
            .post(url("/items"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{body}");
        let err: Value = r.json().await.unwrap();
        assert!(err["error"].is_string(), "{body}: {err}");
    }

    // cached-time: the second answer comes from the cache, with the same time.
    let a: Value = get_json(&c, url("/cached-time")).await;
    let b: Value = get_json(&c, url("/cached-time")).await;
    assert_eq!(a["cached"], false);
    assert_eq!(b["cached"], true);
    assert_eq!(a["time"], b["time"]);

    // stats.
    let stats: Value = get_json(&c, url("/stats")).await;
    assert!(
        stats["namespaces"]["items"]["hits"].as_u64().unwrap() >= 3,
        "{stats}"
    );
    assert!(
        stats["namespaces"]["items"]["invalidations"]
            .as_u64()
            .unwrap()
            >= 4,
        "{stats}"
    );
}
