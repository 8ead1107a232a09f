//! Misses, hits and awaited values; `Result` and `Option` return values: what is cached and what is
//! returned only.

use super::*;

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
