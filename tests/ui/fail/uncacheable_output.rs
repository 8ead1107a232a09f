use cache_runtime::cached;

struct Connection;

#[cached]
async fn connect(id: u64) -> Connection {
    let _ = id;
    Connection
}

fn main() {}
