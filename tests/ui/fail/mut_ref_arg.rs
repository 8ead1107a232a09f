use cache_runtime::cached;

#[cached]
async fn fill(out: &mut Vec<u8>, n: u64) -> u64 {
    out.push(1);
    n
}

fn main() {}
