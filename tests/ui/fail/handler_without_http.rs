use axum::extract::Path;
use cache_runtime::cached;

// An axum handler needs `http`: without it the macro refuses the extractor pattern instead of
// guessing from its name.
#[cached(expire = 60, namespace = "items")]
async fn get_item(Path(id): Path<u64>) -> String {
    id.to_string()
}

fn main() {}
