// A function that is not `async`: one error, and its callers (of it and of its companion)
// add none.
use cache_runtime::cached;

#[cached(expire = 60)]
fn get_user(id: u64) -> String {
    format!("user {id}")
}

fn main() {
    let _: String = get_user(1);
    let _ = get_user_invalidate(1);
}
