//! `FillOptions` the manual API runs although `validate` rejects them: they must behave alike on
//! every backend.

use super::*;

/// `ttl(0)` (rejected by `validate`, logged, run anyway): what a second call gets, per backend.
pub async fn a_zero_ttl_is_not_kept_forever() {
    let server = RedisServer::start();
    let zero = FillOptions::new().ttl(Duration::ZERO);
    assert!(zero.validate().is_err());
    let memory = Cache::new(Config::memory()).await.unwrap();
    let (redis, _) = pair(|| config(&server, "zero", Duration::from_secs(5))).await;
    let (tiered_a, _) = pair(|| tiered(&server, "zerot", Duration::from_secs(5))).await;
    let mut got = Vec::new();
    for cache in [&memory, &redis, &tiered_a] {
        let first = cache
            .get_or_insert_with_options("z", &1u64, zero, async { 1u64 })
            .await;
        let second = cache
            .get_or_insert_with_options("z", &1u64, zero, async { 2u64 })
            .await;
        let later = cache.get::<u64>("z", &1u64).await;
        got.push((first, second, later));
    }
    assert_eq!(got[0].2, None, "a zero ttl keeps nothing: {got:?}");
    assert_eq!(got[0], got[1], "memory vs Redis: {got:?}");
    assert_eq!(got[0], got[2], "memory vs tiered: {got:?}");
}
