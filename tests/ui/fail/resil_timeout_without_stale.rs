use cache_runtime::cached;

#[cached(expire = 60, timeout_ms = 200)]
async fn price(sku: u64) -> Result<u64, String> {
    Ok(sku)
}

fn main() {}
