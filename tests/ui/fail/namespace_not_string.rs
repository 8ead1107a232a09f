use cache_runtime::cached;

#[cached(namespace = user)]
async fn lookup(id: u64) -> u64 {
    id
}

#[cached(namespace = "my users")]
async fn lookup2(id: u64) -> u64 {
    id
}

fn main() {}
