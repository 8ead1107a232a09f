//! Redaction of the credentials in Redis URLs, for everything that formats a URL: `Debug` of
//! [`crate::Config`] and [`crate::Cache`], [`crate::Error::InvalidUrl`], logs.

/// What a redacted password is replaced by.
const MASK: &str = "***";

/// `url` with its password replaced by `***`, e.g. `redis://app:***@127.0.0.1:6379/0`.
///
/// Works on the text, not on a parsed URL, so it also redacts URLs the parser rejects, and errs
/// on the side of hiding too much: everything between `://` (or the start, without a scheme)
/// and the last `@` is the user information. Its part after the first `:` is the password; user
/// information without a `:` is hidden whole (some clients read `redis://secret@host` as a
/// password). Several URLs in one string (a joined cluster list) are covered as one: everything
/// up to the last `@` is hidden. A URL without `@` has no credentials and is returned as is.
///
/// ```
/// use cache_runtime::redact_url;
/// assert_eq!(redact_url("redis://app:hunter2@10.0.0.1:6379/2"), "redis://app:***@10.0.0.1:6379/2");
/// assert_eq!(redact_url("rediss://:hunter2@host"), "rediss://:***@host");
/// assert_eq!(redact_url("redis://app:hunter2@[bad"), "redis://app:***@[bad");
/// assert_eq!(redact_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
/// ```
pub fn redact_url(url: &str) -> String {
    let is_scheme = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
    };
    let start = url
        .find("://")
        .filter(|&i| is_scheme(&url[..i]))
        .map_or(0, |i| i + 3);
    let Some(at) = url.rfind('@').filter(|&at| at >= start) else {
        return url.to_owned();
    };
    let userinfo = &url[start..at];
    // The user name is kept only when it is plainly one (before the first `:`, with no `@`).
    let kept = match userinfo.find(':') {
        Some(colon) if !userinfo[..colon].contains('@') => &userinfo[..=colon],
        _ => "",
    };
    format!("{}{kept}{MASK}{}", &url[..start], &url[at..])
}

/// [`redact_url`] of each of `urls`, joined with `,` (for a cluster's seed list).
pub(crate) fn redact_urls(urls: &[String]) -> String {
    urls.iter()
        .map(|u| redact_url(u))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_shapes() {
        let cases = [
            ("redis://app:hunter2@h:6379/0", "redis://app:***@h:6379/0"),
            ("redis://:hunter2@h", "redis://:***@h"),
            ("rediss://app:hunter2@h", "rediss://app:***@h"),
            ("redis://hunter2@h", "redis://***@h"),
            ("redis://app:hun@ter2@h", "redis://app:***@h"),
            ("redis://app:hunter2@[bad", "redis://app:***@[bad"),
            ("app:hunter2@h", "app:***@h"),
            ("redis://h:6379", "redis://h:6379"),
            ("redis://app:p:w@h", "redis://app:***@h"),
            ("redis+unix:///tmp/r.sock", "redis+unix:///tmp/r.sock"),
            ("", ""),
            ("pass://word@h", "pass://***@h"),
            ("x:pa://ss@h", "x:***@h"),
            ("redis://pw@h:1/0,redis://@h2", "redis://***@h2"),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
        }
        let list = ["redis://a:pw1@h1".to_owned(), "redis://:pw2@h2".to_owned()];
        assert_eq!(redact_urls(&list), "redis://a:***@h1,redis://:***@h2");
        let joined = redact_url(&list.join(","));
        assert!(
            !joined.contains("pw1") && !joined.contains("pw2"),
            "{joined}"
        );
    }

    #[tokio::test]
    async fn config_cache_and_errors_never_show_the_password() {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let good = format!("redis://app:hunter2@127.0.0.1:{port}/0");
        let config = crate::Config::redis(good.clone());
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("app:***@"),
            "{shown}"
        );
        let cluster = crate::Config::redis_cluster([good.clone(), good.replace("app:", ":")]);
        assert!(!format!("{cluster:?}").contains("hunter2"), "{cluster:?}");
        let cache = crate::Cache::new(crate::Config::redis(good)).await.unwrap();
        let shown = format!("{cache:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("app:***@"),
            "{shown}"
        );
        let bad = [
            crate::Config::redis("redis://app:hunter2@[bad"),
            crate::Config::redis("redis://app:hunter2@h:notaport"),
            crate::Config::redis("http://app:hunter2@h"),
            crate::Config::redis_cluster(["redis://app:hunter2@[bad"]),
            crate::Config::redis_cluster(["redis://:hunter2@h", "redis://:hunter2@[bad"]),
        ];
        for config in bad {
            let e = crate::Cache::new(config).await.unwrap_err();
            assert!(matches!(e, crate::Error::InvalidUrl { .. }), "{e:?}");
            let (display, debug) = (e.to_string(), format!("{e:?}"));
            assert!(!display.contains("hunter2"), "{display}");
            assert!(!debug.contains("hunter2"), "{debug}");
        }
    }

    /// A URL built from parts, with `password` somewhere in its user information.
    fn url() -> impl Strategy<Value = (String, String)> {
        let scheme = prop::sample::select(vec!["redis://", "rediss://", "", "redis+unix://"]);
        let user = prop::option::of("[a-zA-Z0-9_.-]{0,8}");
        let password = "\\PC{6,24}";
        let rest = prop::sample::select(vec!["127.0.0.1:6379/0", "[::1]:6379", "[bad", "h", ""]);
        let list = prop::collection::vec("redis://[a-z]{0,4}@?h[0-9]", 0..3);
        (scheme, user, password, rest, list).prop_map(|(scheme, user, password, rest, list)| {
            // Alone, the user information is the password only if it has no `:`.
            let (userinfo, password) = match user {
                Some(user) => (format!("{user}:{password}"), password),
                None => (password.replace(':', "_"), password.replace(':', "_")),
            };
            let mut url = format!("{scheme}{userinfo}@{rest}");
            if !list.is_empty() {
                url = format!("{url},{}", list.join(","));
            }
            (url, password)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]
        #[test]
        fn the_password_never_appears((url, password) in url()) {
            let without = url.replacen(&password, "", 1);
            // A password that also spells part of the rest cannot be told apart from it.
            prop_assume!(!without.contains(&password) && !MASK.contains(&password));
            let out = redact_url(&url);
            prop_assert!(!out.contains(&password), "{url:?} -> {out:?}");
            let listed = redact_urls(&[url.clone(), "redis://h".to_owned()]);
            prop_assert!(!listed.contains(&password), "{url:?} -> {listed:?}");
        }
    }
}
