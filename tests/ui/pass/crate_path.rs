//! `crate = ...` for a crate that re-exports cache_runtime under another path.
#![deny(warnings, missing_docs)]

/// A crate's re-export of the runtime.
pub mod my_lib {
    pub use cache_runtime as cache;
    pub use cache_runtime::cached;
}

use my_lib::cached;

/// As a string, the serde and tokio way.
#[cached(crate = "crate::my_lib::cache", expire = 60)]
pub async fn get_user(id: u64) -> String {
    format!("user {id}")
}

/// As a path.
#[cached(crate = my_lib::cache)]
pub async fn get_team(id: u64) -> Option<String> {
    Some(format!("team {id}"))
}

fn main() {
    let _ = get_user(1);
    let _ = get_user_invalidate(1);
    let _ = get_team(1);
    let _ = get_team_invalidate(1);
}
