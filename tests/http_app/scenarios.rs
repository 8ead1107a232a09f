//! The scenarios of the rules handled by the root's app, one async function per rule, each talking
//! to a real server over loopback with reqwest: hits and misses, conditional requests, methods,
//! request directives, query and header variants, statuses, credentials, `validate_only`,
//! invalidation and per-handler overrides.

use super::*;

/// A miss runs the handler and stores; a hit does not run it, and carries Age.
pub async fn miss_then_hit(c: &Ctx) {
    let first = c.get("/thing/1", &[]).await;
    assert_eq!(first.status(), 200);
    assert_eq!(x_cache(&first), "MISS");
    assert!(header(&first, "age").is_none());
    let etag = header(&first, "etag").unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"') && !etag.starts_with("W/"));
    assert_eq!(header(&first, "content-type"), Some("application/json"));
    // The server keeps the entry 60 s; clients revalidate every time (a cheap 304).
    assert_eq!(header(&first, "cache-control"), Some("public, no-cache"));
    let body = first.text().await.unwrap();
    assert_eq!(body, r#"{"id":1,"run":1}"#);
    assert_eq!(
        etag,
        cache_runtime::http::etag::for_body(body.as_bytes())
            .to_str()
            .unwrap()
    );

    let second = c.get("/thing/1", &[]).await;
    assert_eq!(x_cache(&second), "HIT");
    assert_eq!(header(&second, "etag"), Some(etag.as_str()));
    let age: u64 = header(&second, "age")
        .expect("age on a hit")
        .parse()
        .unwrap();
    assert!(age <= 60);
    assert_eq!(second.text().await.unwrap(), body);
    assert_eq!(runs("thing/1"), 1);
}

/// If-None-Match: 304 with ETag and Cache-Control and no body, on a miss and on a hit.
pub async fn if_none_match(c: &Ctx) {
    let expected = cache_runtime::http::etag::for_body(br#"{"id":2,"run":1}"#);
    let tag = expected.to_str().unwrap();
    let weak_list = format!("\"nope\", W/{tag}");
    let miss = c.get("/thing/2", &[("if-none-match", &weak_list)]).await;
    assert_eq!(miss.status(), 304);
    assert_eq!(x_cache(&miss), "MISS");
    assert_eq!(header(&miss, "etag"), Some(tag));
    assert_eq!(header(&miss, "cache-control"), Some("public, no-cache"));
    assert!(miss.bytes().await.unwrap().is_empty());
    assert_eq!(runs("thing/2"), 1);

    let star = c.get("/thing/2", &[("if-none-match", "*")]).await;
    assert_eq!(star.status(), 304);
    assert_eq!(x_cache(&star), "HIT");
    let exact = c.get("/thing/2", &[("if-none-match", tag)]).await;
    assert_eq!(exact.status(), 304);
    assert!(exact.bytes().await.unwrap().is_empty());
    let other = c.get("/thing/2", &[("if-none-match", "\"other\"")]).await;
    assert_eq!(other.status(), 200);
    assert_eq!(x_cache(&other), "HIT");
    assert_eq!(other.text().await.unwrap(), r#"{"id":2,"run":1}"#);
    assert_eq!(runs("thing/2"), 1, "no 304 ran the handler again");
}

/// HEAD shares GET's entry and gets headers without a body.
pub async fn head_shares_get(c: &Ctx) {
    let head = c.send(reqwest::Method::HEAD, "/thing/3", &[]).await;
    assert_eq!(head.status(), 200);
    assert_eq!(x_cache(&head), "MISS");
    assert!(header(&head, "etag").is_some());
    let len = header(&head, "content-length").map(str::to_owned);
    assert!(head.bytes().await.unwrap().is_empty());
    let get = c.get("/thing/3", &[]).await;
    assert_eq!(x_cache(&get), "HIT");
    let body = get.text().await.unwrap();
    assert_eq!(len, Some(body.len().to_string()));
    let head = c.send(reqwest::Method::HEAD, "/thing/3", &[]).await;
    assert_eq!(x_cache(&head), "HIT");
    assert_eq!(runs("thing/3"), 1);
}

/// Other methods run the handler and return its response untouched.
pub async fn other_methods_pass_through(c: &Ctx) {
    for n in 1..=2 {
        let resp = c.send(reqwest::Method::POST, "/thing/4", &[]).await;
        assert_eq!(resp.status(), 200);
        assert!(header(&resp, "x-cache").is_none());
        assert!(header(&resp, "etag").is_none());
        assert!(header(&resp, "cache-control").is_none());
        assert_eq!(runs("thing/4"), n);
    }
    let get = c.get("/thing/4", &[]).await;
    assert_eq!(x_cache(&get), "MISS", "POST stored nothing");
}

/// Request `no-store`: no read, no write; lists are parsed.
pub async fn request_no_store(c: &Ctx) {
    let r = c
        .get("/thing/5", &[("cache-control", "no-cache, no-store")])
        .await;
    assert_eq!(x_cache(&r), "BYPASS");
    let r = c.get("/thing/5", &[]).await;
    assert_eq!(x_cache(&r), "MISS", "no-store wrote nothing");
    assert_eq!(r.text().await.unwrap(), r#"{"id":5,"run":2}"#);
    let r = c.get("/thing/5", &[("Cache-Control", "No-Store")]).await;
    assert_eq!(x_cache(&r), "BYPASS");
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"id":5,"run":3}"#,
        "no-store read nothing"
    );
    let r = c.get("/thing/5", &[]).await;
    assert_eq!(x_cache(&r), "HIT");
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"id":5,"run":2}"#,
        "no-store overwrote nothing"
    );
}

/// Request `no-cache` / `max-age=0`: run the handler and refresh the entry.
pub async fn request_no_cache_refreshes(c: &Ctx) {
    assert_eq!(x_cache(&c.get("/thing/6", &[]).await), "MISS");
    for (n, directive) in [
        (2, "no-cache"),
        (3, "max-age=0"),
        (4, "must-revalidate, max-age=\"0\""),
    ] {
        let r = c.get("/thing/6", &[("cache-control", directive)]).await;
        assert_eq!(x_cache(&r), "MISS", "{directive}");
        let expected = format!(r#"{{"id":6,"run":{n}}}"#);
        assert_eq!(r.text().await.unwrap(), expected);
        let r = c.get("/thing/6", &[]).await;
        assert_eq!(x_cache(&r), "HIT");
        assert_eq!(
            r.text().await.unwrap(),
            expected,
            "{directive} refreshed the entry"
        );
    }
    let r = c
        .get("/thing/6", &[("cache-control", "max-age=3600")])
        .await;
    assert_eq!(x_cache(&r), "HIT");
}

/// The query is part of the key, in canonical order.
pub async fn query_in_canonical_order(c: &Ctx) {
    let a = c.get("/query?b=2&a=1", &[]).await;
    assert_eq!(x_cache(&a), "MISS");
    let body = a.text().await.unwrap();
    let b = c.get("/query?a=1&b=%32", &[]).await;
    assert_eq!(x_cache(&b), "HIT");
    assert_eq!(b.text().await.unwrap(), body);
    let other = c.get("/query?a=1&b=3", &[]).await;
    assert_eq!(x_cache(&other), "MISS");
    assert_eq!(runs("query"), 2);
}

/// Varied headers select the entry and are announced in Vary.
pub async fn vary_on_headers(c: &Ctx) {
    let de = c.get("/lang", &[("accept-language", "de")]).await;
    assert_eq!(x_cache(&de), "MISS");
    assert_eq!(header(&de, "vary"), Some("accept-language"));
    assert_eq!(de.text().await.unwrap(), "de run 1");
    let en = c.get("/lang", &[("accept-language", "en")]).await;
    assert_eq!(x_cache(&en), "MISS");
    assert_eq!(en.text().await.unwrap(), "en run 1");
    let de = c.get("/lang", &[("accept-language", "de")]).await;
    assert_eq!(x_cache(&de), "HIT");
    assert_eq!(header(&de, "vary"), Some("accept-language"));
    assert_eq!(de.text().await.unwrap(), "de run 1");
}

/// Only 2xx by default (and what `statuses(...)` allows).
pub async fn only_2xx_stored(c: &Ctx) {
    for _ in 0..2 {
        let r = c.get("/status/404", &[]).await;
        assert_eq!(r.status(), 404);
        assert_eq!(x_cache(&r), "MISS");
        assert!(header(&r, "etag").is_none());
    }
    assert_eq!(runs("status/404"), 2);
    for _ in 0..2 {
        assert_eq!(c.get("/status/500", &[]).await.status(), 500);
    }
    assert_eq!(runs("status/500"), 2);
    assert_eq!(x_cache(&c.get("/status/201", &[]).await), "MISS");
    let r = c.get("/status/201", &[]).await;
    assert_eq!((r.status().as_u16(), x_cache(&r)), (201, "HIT"));
    assert_eq!(runs("status/201"), 1);
    // statuses(200, 404): 404 is stored, 201 is not.
    c.get("/status-404/404", &[]).await;
    let r = c.get("/status-404/404", &[]).await;
    assert_eq!((r.status().as_u16(), x_cache(&r)), (404, "HIT"));
    c.get("/status-404/201", &[]).await;
    assert_eq!(x_cache(&c.get("/status-404/201", &[]).await), "MISS");
}

/// Never stored: Set-Cookie, Cache-Control private or no-store from the handler.
pub async fn handler_refusals_not_stored(c: &Ctx) {
    for kind in ["cookie", "private", "no-store"] {
        for n in 1..=2 {
            let r = c.get(&format!("/refusal/{kind}"), &[]).await;
            assert_eq!(x_cache(&r), "MISS", "{kind}");
            assert!(header(&r, "etag").is_none(), "{kind}");
            assert_eq!(r.text().await.unwrap(), format!("run {n}"), "{kind}");
        }
    }
    let r = c.get("/refusal/private", &[]).await;
    assert_eq!(
        header(&r, "cache-control"),
        Some("private, max-age=10"),
        "kept as sent"
    );
}

/// Authorization / Cookie are never answered from a shared entry unless opted in.
pub async fn credentials(c: &Ctx) {
    let r = c.get("/auth", &[]).await;
    assert_eq!(x_cache(&r), "MISS");
    for h in [("authorization", "Bearer a"), ("cookie", "s=1")] {
        let r = c.get("/auth", &[h]).await;
        assert_eq!(x_cache(&r), "BYPASS", "{h:?}");
        assert!(header(&r, "cache-control").unwrap().starts_with("private"));
        assert_ne!(
            r.text().await.unwrap(),
            r#"{"run":1}"#,
            "{h:?} got the shared entry"
        );
    }
    let r = c.get("/auth", &[]).await;
    assert_eq!(x_cache(&r), "HIT");
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"run":1}"#,
        "credentialed requests wrote nothing"
    );

    // Opt-in: allow_credentials.
    assert_eq!(x_cache(&c.get("/auth-shared", &[]).await), "MISS");
    let r = c
        .get("/auth-shared", &[("authorization", "Bearer a")])
        .await;
    assert_eq!(x_cache(&r), "HIT");

    // vary("authorization"): one private entry per credential.
    let a = c.get("/auth-vary", &[("authorization", "a")]).await;
    assert_eq!(x_cache(&a), "MISS");
    assert!(header(&a, "cache-control").unwrap().starts_with("private"));
    let b = c.get("/auth-vary", &[("authorization", "b")]).await;
    assert_eq!(x_cache(&b), "MISS");
    assert_eq!(b.text().await.unwrap(), "b run 1");
    let a = c.get("/auth-vary", &[("authorization", "a")]).await;
    assert_eq!(x_cache(&a), "HIT");
    assert_eq!(a.text().await.unwrap(), "a run 1");
}

/// validate_only: ETag and 304, the handler always runs, nothing stored.
pub async fn validate_only(c: &Ctx) {
    let r = c.get("/validate", &[]).await;
    assert_eq!(r.status(), 200);
    assert!(header(&r, "x-cache").is_none());
    let etag = header(&r, "etag").unwrap().to_owned();
    let r = c.get("/validate", &[("if-none-match", &etag)]).await;
    assert_eq!(r.status(), 304);
    assert_eq!(header(&r, "etag"), Some(etag.as_str()));
    assert!(header(&r, "cache-control").is_some());
    assert_eq!(runs("validate"), 2);
}

/// Handler-level invalidation: by path and by namespace.
pub async fn invalidation(c: &Ctx) {
    assert_eq!(x_cache(&c.get("/thing/7", &[]).await), "MISS");
    assert_eq!(x_cache(&c.get("/thing/7", &[]).await), "HIT");
    cache_runtime::http::invalidate_path("things", "/thing/7")
        .await
        .unwrap();
    let r = c.get("/thing/7", &[]).await;
    assert_eq!(x_cache(&r), "MISS");
    assert_eq!(r.text().await.unwrap(), r#"{"id":7,"run":2}"#);

    for id in [1, 2] {
        assert_eq!(
            x_cache(&c.get(&format!("/ns-thing/{id}"), &[]).await),
            "MISS"
        );
        assert_eq!(
            x_cache(&c.get(&format!("/ns-thing/{id}"), &[]).await),
            "HIT"
        );
    }
    cache_runtime::invalidate_namespace("ns-things")
        .await
        .unwrap();
    for id in [1, 2] {
        assert_eq!(
            x_cache(&c.get(&format!("/ns-thing/{id}"), &[]).await),
            "MISS"
        );
    }
}

/// Per-handler status header and visibility; `no-cache` with or without a TTL.
pub async fn handler_overrides(c: &Ctx) {
    let r = c.get("/custom", &[]).await;
    assert_eq!(header(&r, "x-cache-status"), Some("MISS"));
    assert!(header(&r, "x-cache").is_none());
    assert_eq!(header(&r, "cache-control"), Some("private, no-cache"));
    let r = c.get("/custom", &[]).await;
    assert_eq!(header(&r, "x-cache-status"), Some("HIT"));
    c.get("/no-ttl", &[]).await;
    let r = c.get("/no-ttl", &[]).await;
    assert_eq!(x_cache(&r), "HIT");
    assert_eq!(header(&r, "cache-control"), Some("public, no-cache"));
}
