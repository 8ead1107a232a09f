use cache_runtime::cached;

#[cached(expire = 60, stale = 0)]
async fn stale_zero(id: u64) -> Result<u64, String> {
    Ok(id)
}

#[cached(expire = 60, stale = 10, timeout_ms = 0)]
async fn timeout_zero(id: u64) -> Result<u64, String> {
    Ok(id)
}

#[cached(expire = 60, refresh_after = 0)]
async fn refresh_zero(id: u64) -> Result<u64, String> {
    Ok(id)
}

fn main() {}
