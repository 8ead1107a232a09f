//! HTTP caching of axum handlers on the memory backend: a real server on a free loopback port,
//! a real client (reqwest), one test per rule (see `http_app.rs`).
//!
//! `cache_runtime::init` is process-global, so every test shares one runtime, one cache and
//! one server; each scenario uses its own paths.

mod http_app;

use std::sync::OnceLock;

use cache_runtime::Config;
use http_app::Ctx;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

fn base() -> String {
    static BASE: OnceLock<String> = OnceLock::new();
    BASE.get_or_init(|| {
        runtime().block_on(async {
            cache_runtime::init(Config::memory()).await.unwrap();
            http_app::serve().await
        })
    })
    .clone()
}

macro_rules! scenario {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            let ctx = Ctx::new(base());
            runtime().block_on(http_app::$name(&ctx));
        }
    )*};
}

/// The scenarios of `http_rules.rs`.
macro_rules! rule {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            let ctx = Ctx::new(base());
            runtime().block_on(http_app::rules::$name(&ctx));
        }
    )*};
}

/// The scenarios of `http_resil.rs`.
macro_rules! resil {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            let ctx = Ctx::new(base());
            runtime().block_on(http_app::resil::$name(&ctx));
        }
    )*};
}

resil!(
    stale_serves_the_stored_response_when_the_handler_fails,
    refresh_after_refreshes_in_the_background,
);

rule!(
    revalidate_by_default,
    client_freshness_opt_in,
    invalidate_path_drops_every_variant,
    last_modified_and_if_modified_since,
    request_max_age_min_fresh_max_stale,
    request_only_if_cached,
    typed_handler_invalidation,
    escapes_share_the_entry,
);

scenario!(
    miss_then_hit,
    if_none_match,
    head_shares_get,
    other_methods_pass_through,
    request_no_store,
    request_no_cache_refreshes,
    query_in_canonical_order,
    vary_on_headers,
    only_2xx_stored,
    handler_refusals_not_stored,
    credentials,
    validate_only,
    invalidation,
    handler_overrides,
);

/// Statistics count each request once: on a namespace of its own (`counted`, requested by no
/// other test), a miss and two hits are exactly one miss, one insert and two hits.
#[test]
fn stats_count_hits_and_misses() {
    let ctx = Ctx::new(base());
    runtime().block_on(async {
        let before = cache_runtime::stats().namespace("counted");
        for expected in ["MISS", "HIT", "HIT"] {
            let r = ctx.get("/counted/1", &[]).await;
            assert_eq!(http_app::x_cache(&r), expected);
        }
        let after = cache_runtime::stats().namespace("counted");
        let delta = (
            after.hits - before.hits,
            after.misses - before.misses,
            after.inserts - before.inserts,
        );
        assert_eq!(delta, (2, 1, 1), "{after:?}");
    });
}
