use cache_runtime::cached;

#[cached(expire = 60, http(publik))]
async fn home() -> String {
    String::new()
}

fn main() {}
