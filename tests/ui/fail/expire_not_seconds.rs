use cache_runtime::cached;

#[cached(expire = "1m")]
async fn lookup(id: u64) -> u64 {
    id
}

#[cached(expire = 1.5)]
async fn lookup2(id: u64) -> u64 {
    id
}

fn main() {}
