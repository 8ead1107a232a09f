//! Cache keys: stable, readable, bounded and collision-free.
//!
//! Every entry key starts with the configured prefix and a marker naming its key space, so the
//! key spaces are disjoint whatever namespace strings are used:
//!
//! | written by | key |
//! |---|---|
//! | `#[cached]` functions | `{prefix}:fn:{namespace}:{function}:v{version}:{type}:{arguments}` |
//! | the manual API ([`crate::Cache::get`], …) | `{prefix}:manual:{namespace}:{type}:{key}` |
//! | cached axum handlers | `{prefix}:http:{namespace}:{request}` (see `http::key`) |
//!
//! For example `cache:fn:user:my_app.users.get_user:v0:3b5a1dd4:[42]` for
//! `my_app::users::get_user(42)` in namespace `user` returning a `String`, or
//! `cache:manual:user:3b5a1dd4:42` for `cache.get::<String>("user", &42)`.
//!
//! - `{namespace}` and `{function}` are [escaped](segment) so they never contain `:`: a Rust
//!   path's `::` reads `.`, a lone `:` reads `%3A` (and `.`, `#`, `%` read `%2E`, `%23`, `%25`).
//!   A namespace can therefore never spell out another key space or another namespace's keys.
//! - `{function}` is the function's full path: its module, and for a method the `impl`'s self
//!   type (`my_app.Users.name`), for a trait method also the trait
//!   (`<my_app.Users as my_app.Named>.name`). Two functions of one name in one namespace
//!   never share entries. A path longer than [`MAX_FUNCTION_LEN`] is replaced by the function's
//!   name, `#` and a BLAKE3 hash of the path.
//! - The path comes from [`std::any::type_name_of_val`] of an item nested in the function,
//!   computed once per function (not per call). Like the type tag below, the compiler does not
//!   promise to spell it identically across Rust releases: a toolchain upgrade may change a
//!   function's keys, which costs one round of misses, never a wrong value. A generic `impl`
//!   (`W<_>`) or a trait's default method has one path for every type it is used with, like a
//!   generic function: put `std::any::type_name::<T>()` in `key = ...` to split them. Two
//!   functions of one name declared in sibling blocks of one function body also share a path:
//!   rename one.
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

use std::borrow::Cow;

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

/// The start of the internal namespaces of HTTP paths (see `http::invalidate_path`).
pub(crate) const HTTP_PATH_NAMESPACE: &str = "__http_path:";

/// The marker of the keys of `#[cached]` functions.
const FUNCTION_SPACE: &str = "fn";
/// The marker of the keys of the manual API.
const MANUAL_SPACE: &str = "manual";
/// The marker of the keys of cached HTTP responses.
#[cfg_attr(not(feature = "axum"), allow(dead_code))]
const HTTP_SPACE: &str = "http";

/// The longest escaped function path kept readable in a key; longer ones are hashed.
pub const MAX_FUNCTION_LEN: usize = 96;

/// `text` escaped to one key segment, without `:`: `::` becomes `.`, and `%`, `.`, `#` and a
/// lone `:` become `%25`, `%2E`, `%23` and `%3A`. Distinct texts give distinct segments.
///
/// ```
/// use cache_runtime::key::segment;
/// assert_eq!(segment("user"), "user");
/// assert_eq!(segment("my_app::users::get_user"), "my_app.users.get_user");
/// assert_eq!(segment("user:get_user:v0"), "user%3Aget_user%3Av0");
/// assert_eq!(segment("v1.users"), "v1%2Eusers");
/// ```
pub fn segment(text: &str) -> Cow<'_, str> {
    if !text.contains([':', '.', '#', '%']) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let mut len = c.len_utf8();
        match c {
            ':' if rest.starts_with("::") => {
                out.push('.');
                len = 2;
            }
            ':' => out.push_str("%3A"),
            '.' => out.push_str("%2E"),
            '#' => out.push_str("%23"),
            '%' => out.push_str("%25"),
            c => out.push(c),
        }
        rest = &rest[len..];
    }
    Cow::Owned(out)
}

/// The key segment naming a function, from the [`std::any::type_name_of_val`] of an item
/// nested in its body (`my_app::Users::name::{{closure}}::__cache_site` for an `async fn`, or
/// in its `_invalidate` companion) and the function's name: the function's escaped full path,
/// `my_app.Users.name`, or when longer than [`MAX_FUNCTION_LEN`] `name#` and a hash of it.
pub fn function_identity(nested_item: &str, function: &str) -> String {
    // Drop the nested item, the async body (`{{closure}}`), and the function that holds them
    // (the function itself or its `_invalidate` companion): the rest is where it is declared.
    let mut path = nested_item.rsplit_once("::").map_or("", |(head, _)| head);
    while let Some(head) = path.strip_suffix("::{{closure}}") {
        path = head;
    }
    let parent = path.rsplit_once("::").map_or("", |(head, _)| head);
    let full = if parent.is_empty() {
        function.to_owned()
    } else {
        format!("{parent}::{function}")
    };
    let escaped = segment(&full);
    if escaped.len() <= MAX_FUNCTION_LEN {
        return escaped.into_owned();
    }
    let hash = blake3::hash(full.as_bytes());
    format!("{}#{}", segment(function), hex(&hash.as_bytes()[..16]))
}

/// The fixed part of a function's keys before the type tag:
/// `{prefix}:fn:{namespace}:{function}:v{version}:`, where `function` comes from
/// [`function_identity`] (already a segment). Computed once per function.
pub(crate) fn function_stem(prefix: &str, namespace: &str, function: &str, version: u32) -> String {
    let namespace = segment(namespace);
    format!("{prefix}:{FUNCTION_SPACE}:{namespace}:{function}:v{version}:")
}

/// The fixed part of a function's keys: its [stem](function_stem), `{type}:`.
pub(crate) fn function_head(stem: &str, type_tag: &str) -> String {
    format!("{stem}{type_tag}:")
}

/// The fixed part of a manual-API key: `{prefix}:manual:{namespace}:{type}:`.
pub(crate) fn manual_head(prefix: &str, namespace: &str, type_tag: &str) -> String {
    let namespace = segment(namespace);
    format!("{prefix}:{MANUAL_SPACE}:{namespace}:{type_tag}:")
}

/// The fixed part of the keys of cached HTTP responses: `{prefix}:http:{namespace}:`.
#[cfg_attr(not(feature = "axum"), allow(dead_code))]
pub(crate) fn http_head(prefix: &str, namespace: &str) -> String {
    let namespace = segment(namespace);
    format!("{prefix}:{HTTP_SPACE}:{namespace}:")
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

    #[test]
    fn keys_at_the_limit_are_kept_and_hashed_ones_may_fill_it_exactly() {
        let head = "p:fn:ns:f:";
        let long = "x".repeat(200);
        let plain = build(head, &long, 1_000).unwrap();
        // Exactly at the limit: kept as is.
        assert_eq!(build(head, &long, plain.len()).unwrap(), plain);
        // One byte over: hashed, `#` + 32 hex digits.
        let hashed = build(head, &long, plain.len() - 1).unwrap();
        assert_eq!(hashed.len(), head.len() + 33);
        assert!(hashed.starts_with(head) && hashed[head.len()..].starts_with('#'));
        // A limit the hashed form fills exactly is accepted; one below is an error.
        assert_eq!(
            build(head, &long, head.len() + 33).unwrap().len(),
            head.len() + 33
        );
        assert!(build(head, &long, head.len() + 32).is_err());
    }
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
    fn functions_are_named_by_their_full_path() {
        let id = |nested: &str, function: &str| function_identity(nested, function);
        let count = id("app::live::count::{{closure}}::__cache_site", "count");
        assert_eq!(count, "app.live.count");
        assert_eq!(
            id(
                "app::live::count_invalidate::{{closure}}::__cache_site",
                "count"
            ),
            count,
            "the `_invalidate` companion names the function it invalidates"
        );
        assert_ne!(
            id("app::archived::count::{{closure}}::__cache_site", "count"),
            count
        );
        assert_eq!(
            id("app::Users::name::{{closure}}::__cache_site", "name"),
            "app.Users.name"
        );
        assert_eq!(
            id(
                "<app::Users as app::Named>::name::{{closure}}::__cache_site",
                "name"
            ),
            "<app.Users as app.Named>.name"
        );
        assert_eq!(
            id("app::W<_>::get::{{closure}}::__cache_site", "get"),
            "app.W<_>.get"
        );
        // Declared in an async block: the block's closure stays.
        assert_eq!(
            id(
                "app::outer::{{closure}}::inner::{{closure}}::__cache_site",
                "inner"
            ),
            "app.outer.{{closure}}.inner"
        );
        // Synchronous bodies (no closure) and the unexpected (no path) still work.
        assert_eq!(id("app::f::__cache_site", "f"), "app.f");
        assert_eq!(id("__cache_site", "f"), "f");
    }

    #[test]
    fn long_function_paths_are_hashed_and_bounded() {
        let module = "very_long_module_name::".repeat(8);
        let a = function_identity(
            &format!("app::{module}f::{{{{closure}}}}::__cache_site"),
            "f",
        );
        let b = function_identity(&format!("app::{module}g::f::__cache_site"), "f");
        assert!(a.starts_with("f#") && a.len() == 2 + 32, "{a}");
        assert_ne!(a, b);
        assert!(!segment(&module).contains('#'));
    }

    #[test]
    fn namespaces_cannot_forge_another_key_space() {
        let tag = "3b5a1dd4";
        let function = function_identity("app::get_user::{{closure}}::__cache_site", "get_user");
        let real = function_head(&function_stem("cache", "user", &function, 0), tag);
        assert_eq!(real, "cache:fn:user:app.get_user:v0:3b5a1dd4:");
        for ns in [
            "user:app.get_user:v0",
            "fn:user:app.get_user:v0",
            "user:app::get_user:v0",
        ] {
            let forged = manual_head("cache", ns, tag);
            assert!(!forged.starts_with("cache:fn:"), "{forged}");
            assert_ne!(http_head("cache", ns), real);
        }
        // Within a key space, a namespace cannot reach into the next segment either.
        assert_ne!(
            manual_head("cache", "a:b", tag),
            manual_head("cache", "a", &format!("b:{tag}"))
        );
        assert_eq!(
            manual_head("cache", "a:b", tag),
            "cache:manual:a%3Ab:3b5a1dd4:"
        );
        assert_eq!(http_head("cache", "items"), "cache:http:items:");
    }

    #[test]
    fn type_tags_differ_by_type_and_are_stable() {
        assert_ne!(type_tag::<u32>(), type_tag::<u64>());
        assert_eq!(type_tag::<Vec<String>>(), type_tag::<Vec<String>>());
        assert_eq!(type_tag::<u32>().len(), 8);
    }

    proptest! {
        #[test]
        fn segments_are_injective_and_colon_free(a in "[a-z:.#%]{0,12}", b in "[a-z:.#%]{0,12}") {
            let (sa, sb) = (segment(&a), segment(&b));
            prop_assert!(!sa.contains(':'));
            prop_assert_eq!(sa == sb, a == b);
        }

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
