use cache_runtime::cached;

#[cached(expire = 60, refresh_after = 30)]
async fn by_name(name: &str) -> u64 {
    name.len() as u64
}

#[cached(expire = 60, stale = 600, timeout_ms = 200)]
async fn by_bytes<'a>(bytes: std::borrow::Cow<'a, [u8]>) -> Result<u64, String> {
    Ok(bytes.len() as u64)
}

struct Service;

impl Service {
    #[cached(expire = 60, refresh_after = 30)]
    async fn price(&self, id: u64) -> u64 {
        id
    }

    #[cached(expire = 60, refresh_after = 30)]
    async fn cost(self: &Self, id: u64) -> u64 {
        id
    }
}

fn main() {}
