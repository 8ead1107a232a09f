use cache_runtime::cached;

#[cached(expire = 60, expire = 120)]
async fn lookup(id: u64) -> u64 {
    id
}

fn main() {}
