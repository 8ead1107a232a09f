use cache_runtime::cached;

#[cached(stale = 3600)]
async fn price(sku: u64) -> Result<u64, String> {
    Ok(sku)
}

fn main() {}
