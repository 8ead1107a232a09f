//! The real `items_server` binary never prints the password of its `REDIS_URL`, also when the
//! URL does not parse and it exits at startup.

use std::process::{Command, Stdio};

#[test]
fn a_bad_redis_url_is_reported_without_its_password() {
    for url in [
        "redis://app:hunter2@[bad",
        "redis://:hunter2@[bad",
        "rediss://app:hunter2@host:notaport",
        "redis://app:hunter2@host:notaport/0",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_items_server"))
            .env("REDIS_URL", url)
            .env("PORT", "0")
            .env("RUST_LOG", "trace")
            .stdin(Stdio::null())
            .output()
            .expect("run items_server");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(!out.status.success(), "{url}: started; stdout {stdout}");
        assert!(stderr.contains("InvalidUrl"), "{url}: stderr {stderr}");
        assert!(
            !stdout.contains("hunter2") && !stderr.contains("hunter2"),
            "{url}: the password leaked\nstdout {stdout}\nstderr {stderr}"
        );
    }
}
