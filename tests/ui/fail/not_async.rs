use cache_runtime::cached;

#[cached(expire = 60)]
fn get_user(id: u64) -> String {
    format!("user {id}")
}

fn main() {}
