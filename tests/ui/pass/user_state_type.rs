//! A user type named like an axum extractor is a plain argument: the function stays a plain
//! cached function (keyed by `state`, with its `_invalidate` companion), never a handler.

use cache_runtime::cached;

#[derive(serde::Serialize, Clone, Copy)]
enum State {
    Open,
    Closed,
}

#[cached(expire = 60, namespace = "describe")]
async fn describe(state: State) -> String {
    match state {
        State::Open => "open".to_owned(),
        State::Closed => "closed".to_owned(),
    }
}

/// A tuple-struct pattern of the user's own type is a plain argument too.
#[derive(serde::Serialize)]
struct Path(u64);

#[cached(namespace = "paths")]
async fn by_path(Path(id): Path) -> u64 {
    id
}

fn main() {
    let _ = async {
        let _: String = describe(State::Closed).await;
        describe_invalidate(State::Open).await.unwrap();
        let _: u64 = by_path(Path(1)).await;
    };
}
