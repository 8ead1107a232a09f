use cache_runtime::cached;

#[cached(expire = 60, http(vary("accept language")))]
async fn home() -> String {
    String::new()
}

fn main() {}
