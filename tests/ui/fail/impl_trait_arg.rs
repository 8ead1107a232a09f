use cache_runtime::cached;

#[cached]
async fn render(name: impl AsRef<str>, size: u32) -> String {
    format!("{}:{size}", name.as_ref())
}

fn main() {}
