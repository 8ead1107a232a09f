use cache_runtime::cached;

#[cached(expire = 60, refresh_after = 60)]
async fn price(sku: u64) -> u64 {
    sku
}

fn main() {}
