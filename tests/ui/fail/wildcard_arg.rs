use cache_runtime::cached;

#[cached]
async fn lookup(_: u64, id: u64) -> u64 {
    id
}

fn main() {}
