use cache_runtime::cached;

struct Pool;

#[cached(skip(pool))]
async fn lookup(db: &Pool, id: u64) -> u64 {
    let _ = db;
    id
}

fn main() {}
