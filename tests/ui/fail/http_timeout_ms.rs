use cache_runtime::cached;

#[cached(http, expire = 60, stale = 600, timeout_ms = 200)]
async fn item(id: axum::extract::Path<u64>) -> String {
    id.0.to_string()
}

fn main() {}
