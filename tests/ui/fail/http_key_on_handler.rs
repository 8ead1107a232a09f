use axum::extract::Path;
use cache_runtime::cached;

#[cached(http, expire = 60, key = id)]
async fn get_item(Path(id): Path<u64>) -> String {
    id.to_string()
}

fn main() {}
