//! A real `items_server` behind a real nginx (`proxy_cache`, `proxy_cache_revalidate on`) on
//! loopback, with its config, cache, pid and logs in a temp dir.
//!
//! - `/`: nginx honours the server's headers. `Cache-Control: no-cache` means nginx stores
//!   nothing (nginx does not keep `no-cache` responses), so after a write through another
//!   client the next GET through nginx returns the new item, answered by the server's cache.
//! - `/reval/`: nginx ignores `Cache-Control` and keeps responses 1 s, then revalidates them
//!   with `If-None-Match`: the server answers 304 from its cache (its hit counter grows, the
//!   handler does not run), nginx says `REVALIDATED`; after a write the revalidation brings
//!   the new item.
//!
//! The test lives in the examples package because it starts the `items_server` binary. If
//! nginx is missing it installs it (`apt-get`, as `.ci/run` does) and fails if it cannot.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn nginx_binary() -> PathBuf {
    let found = || {
        ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
    };
    if let Some(path) = found() {
        return path;
    }
    let installed = Command::new("sh")
        .args([
            "-c",
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx",
        ])
        .stdout(Stdio::null())
        .status();
    assert!(
        matches!(installed, Ok(s) if s.success()),
        "nginx is not installed and could not be installed (apt-get install nginx)"
    );
    found().expect("nginx installed but not found")
}

fn start_items_server() -> (Proc, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_items_server"))
        .env_remove("REDIS_URL")
        .env_remove("DATABASE_URL")
        .env("PORT", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start items_server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (Proc(child), base)
}

fn nginx_config(dir: &Path, port: u16, upstream: &str) -> String {
    let d = dir.display();
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    // As root, workers would switch to `nobody`, who cannot write the temp dir.
    let user = if is_root { "user root root;" } else { "" };
    format!(
        r#"daemon off;
master_process off;
{user}
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    proxy_cache_path {d}/cache levels=1 keys_zone=items:1m;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass {upstream};
            proxy_cache items;
            proxy_cache_revalidate on;
            add_header X-Nginx-Cache $upstream_cache_status always;
        }}
        location /reval/ {{
            proxy_pass {upstream}/;
            proxy_cache items;
            proxy_cache_revalidate on;
            proxy_ignore_headers Cache-Control Expires;
            proxy_cache_valid 200 1s;
            add_header X-Nginx-Cache $upstream_cache_status always;
        }}
    }}
}}
"#
    )
}

async fn get(client: &reqwest::Client, url: &str) -> (String, String, Value) {
    let resp = client.get(url).send().await.unwrap();
    assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
    let h = |n: &str| {
        resp.headers()
            .get(n)
            .map_or("-", |v| v.to_str().unwrap())
            .to_owned()
    };
    let (nginx, server) = (h("x-nginx-cache"), h("x-cache"));
    (nginx, server, resp.json().await.unwrap())
}

async fn server_hits(client: &reqwest::Client, base: &str) -> u64 {
    let stats: Value = get(client, &format!("{base}/stats")).await.2;
    stats["namespaces"]["items"]["hits"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_server_behind_nginx_stays_consistent_and_is_revalidated() {
    tokio::time::timeout(Duration::from_secs(60), scenario())
        .await
        .expect("the nginx scenario took over 60 s");
}

async fn scenario() {
    let nginx = nginx_binary();
    let (_server, base) = start_items_server();
    let dir = std::env::temp_dir().join(format!("items-nginx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let _dir = TempDir(dir.clone());
    let port = cache_tests::free_port();
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, nginx_config(&dir, port, &base)).unwrap();
    let _nginx = Proc(
        Command::new(&nginx)
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx"),
    );
    let front = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    cache_tests::wait_until("nginx answers", Duration::from_secs(10), async || {
        client.get(format!("{front}/stats")).send().await.is_ok()
    })
    .await;

    // Honouring the server's headers: `no-cache` is never kept by nginx, the server's cache
    // answers, and a write through another client is visible at once.
    let (_, _, item) = get(&client, &format!("{front}/items/1")).await;
    let (nginx_status, server_status, again) = get(&client, &format!("{front}/items/1")).await;
    assert_eq!(again, item);
    assert_eq!(
        (nginx_status.as_str(), server_status.as_str()),
        ("MISS", "HIT")
    );
    let put = client
        .put(format!("{base}/items/1"))
        .json(&json!({"name": "Through nginx", "price": 1.0}))
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    let (_, _, fresh) = get(&client, &format!("{front}/items/1")).await;
    assert_eq!(fresh["name"], "Through nginx", "nginx served an old item");

    // Kept 1 s by nginx, then revalidated with If-None-Match: a 304 from the server's cache.
    let url = format!("{front}/reval/items/2");
    let (first, _, item2) = get(&client, &url).await;
    assert_eq!(first, "MISS");
    let hits_before = server_hits(&client, &base).await;
    cache_tests::wait_until("nginx revalidates", Duration::from_secs(10), async || {
        get(&client, &url).await.0 == "REVALIDATED"
    })
    .await;
    assert!(
        server_hits(&client, &base).await > hits_before,
        "the revalidation was answered from the server's cache"
    );
    let put = client
        .put(format!("{base}/items/2"))
        .json(&json!({"name": "Revalidated", "price": 2.0}))
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    cache_tests::wait_until(
        "the new item through nginx",
        Duration::from_secs(10),
        async || {
            let (_, _, body) = get(&client, &url).await;
            assert!(body == item2 || body["name"] == "Revalidated", "{body}");
            body["name"] == "Revalidated"
        },
    )
    .await;
}
