use cache_runtime::cached;

#[cached(ttl = 60)]
async fn lookup(id: u64) -> u64 {
    id
}

fn main() {}
