// Every mistake of the attribute is reported in one run, and the function (and its
// `_invalidate` companion) still exist: their callers add no error of their own.
use cache_runtime::cached;

#[cached(ttl = 60, namespace = "has space", version = "two", crate = 42, skip(pool))]
async fn get_user(id: u64, other: &mut String) -> String {
    other.push('!');
    format!("user {id}")
}

struct Repo;

impl Repo {
    #[cached(expire = 0)]
    async fn find(&mut self, _: u64) -> u64 {
        1
    }
}

fn main() {
    let _ = get_user(1, &mut String::new());
    let _ = get_user_invalidate(1, &mut String::new());
    let mut repo = Repo;
    let _ = repo.find(1);
    let _ = repo.find_invalidate(1);
}
