//! Cache keys: stable, readable, bounded and collision-free.
//!
//! A key reads `{prefix}:{namespace}:{function}:v{version}:{type}:{arguments}`, for example
//! `cache:user:get_user:v0:5c1a9e04:[42]`:
//!
//! - the arguments are serialized as compact JSON (serde), which is unambiguous: `("a:b", "c")`
//!   gives `["a:b","c"]` and `("a", "b:c")` gives `["a","b:c"]`;
//! - `{type}` is a hash of the cached value's type name, so changing a function's return type
//!   never decodes old bytes as the new type;
//! - when the key would be longer than the configured limit (250 bytes by default) the argument
//!   part is replaced by `#` and a BLAKE3 hash of it (no JSON text starts with `#`).
//!
//! Nothing here uses `std::hash::Hash`: keys are the same in every process, build and platform.
//! Arguments are serialized with serde, so a `HashMap` argument (whose iteration order differs
//! between processes) should be a `BTreeMap` instead.

use serde::Serialize;

use crate::Error;

/// The default bound on key length in bytes.
pub const DEFAULT_MAX_KEY_LEN: usize = 250;

/// A short, stable hash of `T`'s type name (8 hex digits).
///
/// The name comes from [`std::any::type_name`], which the compiler does not promise to keep
/// identical across Rust releases: after a toolchain upgrade a type's tag may change, which
/// costs one round of misses, never a misread entry.
pub fn type_tag<T: ?Sized>() -> String {
    let hash = blake3::hash(std::any::type_name::<T>().as_bytes());
    hex(&hash.as_bytes()[..4])
}

/// Hex encoding of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// The fixed part of a function's keys: `{prefix}:{namespace}:{function}:v{version}:{type}:`.
pub(crate) fn function_head(
    prefix: &str,
    namespace: &str,
    function: &str,
    version: u32,
    type_tag: &str,
) -> String {
    format!("{prefix}:{namespace}:{function}:v{version}:{type_tag}:")
}

/// The fixed part of a manual-API key: `{prefix}:{namespace}:{type}:`.
pub(crate) fn manual_head(prefix: &str, namespace: &str, type_tag: &str) -> String {
    format!("{prefix}:{namespace}:{type_tag}:")
}

/// Appends the serialized `args` to `head`, hashing them when the key would exceed `max_len`.
pub(crate) fn build<A: Serialize + ?Sized>(
    head: &str,
    args: &A,
    max_len: usize,
) -> Result<String, Error> {
    let mut buf = Vec::with_capacity(head.len() + 32);
    buf.extend_from_slice(head.as_bytes());
    serde_json::to_writer(&mut buf, args).map_err(|e| Error::Key(e.to_string()))?;
    if buf.len() > max_len {
        let hash = blake3::hash(&buf[head.len()..]);
        buf.truncate(head.len());
        buf.push(b'#');
        buf.extend_from_slice(hex(&hash.as_bytes()[..16]).as_bytes());
        if buf.len() > max_len {
            return Err(Error::TooLarge {
                what: "key",
                size: buf.len(),
                limit: max_len,
            });
        }
    }
    String::from_utf8(buf).map_err(|e| Error::Key(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn separators_inside_arguments_do_not_collide() {
        let a = build("p:", &("a:b", "c"), 250).unwrap();
        let b = build("p:", &("a", "b:c"), 250).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn long_arguments_are_hashed_and_bounded() {
        let long = "x".repeat(1000);
        let key = build("p:ns:f:v0:00000000:", &(&long,), 250).unwrap();
        assert!(key.len() <= 250, "{key}");
        assert!(key.starts_with("p:ns:f:v0:00000000:#"));
        let other = build("p:ns:f:v0:00000000:", &(format!("{long}y"),), 250).unwrap();
        assert_ne!(key, other);
    }

    #[test]
    fn golden_type_tags() {
        // Keys written by older builds must keep matching: change these only on purpose.
        assert_eq!(type_tag::<u64>(), "2a2b7e06");
        assert_eq!(type_tag::<String>(), "3b5a1dd4");
        assert_eq!(
            build("cache:user:get_user:v0:00000000:", &(&42u64, &"a:b"), 250).unwrap(),
            r#"cache:user:get_user:v0:00000000:[42,"a:b"]"#
        );
    }

    #[test]
    fn type_tags_differ_by_type_and_are_stable() {
        assert_ne!(type_tag::<u32>(), type_tag::<u64>());
        assert_eq!(type_tag::<Vec<String>>(), type_tag::<Vec<String>>());
        assert_eq!(type_tag::<u32>().len(), 8);
    }

    proptest! {
        #[test]
        fn distinct_argument_tuples_give_distinct_keys(
            a in ".{0,40}", b in ".{0,40}", c in ".{0,40}", d in ".{0,40}", n in any::<i64>(), m in any::<i64>()
        ) {
            let k1 = build("p:ns:f:v0:t:", &(&a, &b, n), 250).unwrap();
            let k2 = build("p:ns:f:v0:t:", &(&c, &d, m), 250).unwrap();
            prop_assert_eq!(k1 == k2, (a, b, n) == (c, d, m));
        }

        #[test]
        fn long_keys_stay_injective(a in ".{100,400}", b in ".{100,400}") {
            let k1 = build("p:", &(&a,), 250).unwrap();
            let k2 = build("p:", &(&b,), 250).unwrap();
            prop_assert!(k1.len() <= 250 && k2.len() <= 250);
            prop_assert_eq!(k1 == k2, a == b);
        }
    }
}
