use cache_runtime::cached;

#[cached(version = "2")]
async fn lookup(id: u64) -> u64 {
    id
}

fn main() {}
