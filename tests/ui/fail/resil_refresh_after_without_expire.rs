use cache_runtime::cached;

#[cached(refresh_after = 30)]
async fn price(sku: u64) -> Result<u64, String> {
    Ok(sku)
}

fn main() {}
