use axum::extract::Path;
use cache_runtime::cached;

// `{item}` is not a binding of the `Path` argument (it is `id`).
#[cached(http(route = "/items/{item}"), expire = 60)]
async fn get_item(Path(id): Path<u64>) -> String {
    id.to_string()
}

fn main() {}
