// Every path of the expansion goes through `crate = ...`.
use cache_runtime::cached;

mod elsewhere {}

#[cached(crate = "crate::elsewhere")]
async fn get_user(id: u64) -> String {
    format!("user {id}")
}

fn main() {}
