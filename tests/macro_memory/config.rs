//! Configuration errors and the JSON codec.

use super::*;

#[tokio::test]
async fn bad_configurations_are_rejected_with_invalid_config() {
    let bad = [
        Config::memory().max_entries(0),
        Config::memory().max_bytes(0),
        Config::memory().prefix(""),
        Config::memory().prefix("has space"),
        Config::memory().max_key_len(10),
    ];
    for config in bad {
        let err = Cache::new(config.clone()).await.unwrap_err();
        assert!(
            matches!(err, cache_runtime::Error::InvalidConfig(_)),
            "{config:?} gave {err:?}"
        );
        assert!(!err.to_string().is_empty());
    }
}

#[tokio::test]
async fn the_json_codec_works_and_reports_what_it_cannot_encode() {
    use cache_runtime::codec::{Codec, Json};
    let mut bytes = Vec::new();
    let value = BTreeMap::from([("a".to_string(), vec![1u8, 2])]);
    Json::encode_into(&value, &mut bytes).unwrap();
    assert_eq!(bytes, br#"{"a":[1,2]}"#);
    assert_eq!(
        Json::decode::<BTreeMap<String, Vec<u8>>>(&bytes).unwrap(),
        value
    );
    assert!(Json::decode::<u8>(b"not json").is_err());

    let cache = Cache::new(Config::memory().codec(CodecKind::Json))
        .await
        .unwrap();
    cache.set("j", &1, &value, None).await.unwrap();
    assert_eq!(
        cache.get::<BTreeMap<String, Vec<u8>>>("j", &1).await,
        Some(value)
    );
    // JSON objects need string keys: this map cannot be encoded, so it is not stored.
    let tuple_keys = BTreeMap::from([((1u8, 2u8), 3u8)]);
    assert!(cache.set("j", &2, &tuple_keys, None).await.is_err());
    assert_eq!(cache.stats().namespace("j").errors, 1);
}
