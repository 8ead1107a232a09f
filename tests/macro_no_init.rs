//! Without `cache_runtime::init`, `#[cached]` functions still work, uncached, and exactly one
//! warning is logged, however many calls and functions run. A later `init` turns caching on.
//!
//! One test in its own binary: the global cache and the warning are once per process.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use cache_runtime::{Config, Error, cached};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(expire = 60, namespace = "no_init")]
async fn lookup(id: u64) -> Result<u64, String> {
    RUNS.fetch_add(1, SeqCst);
    Ok(id)
}

#[cached]
async fn other(id: u64) -> u64 {
    RUNS.fetch_add(1, SeqCst);
    id
}

/// Collects the formatted warnings.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn warnings(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .filter(|l| l.contains("WARN"))
            .map(str::to_owned)
            .collect()
    }
}

#[tokio::test]
async fn without_init_functions_run_uncached_with_one_warning() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(move || writer.clone()),
    );
    let _guard = subscriber.set_default();

    assert!(matches!(cache_runtime::cache(), Err(Error::NotInitialized)));
    for _ in 0..3 {
        assert_eq!(lookup(1).await, Ok(1));
        assert_eq!(other(2).await, 2);
    }
    // An invalidation that reached no cache says so.
    assert!(matches!(
        lookup_invalidate(1).await,
        Err(Error::NotInitialized)
    ));
    assert!(matches!(
        other_invalidate(2).await,
        Err(Error::NotInitialized)
    ));
    assert!(matches!(
        cache_runtime::invalidate_all().await,
        Err(Error::NotInitialized)
    ));
    assert_eq!(RUNS.load(SeqCst), 6, "every call ran its body");
    assert_eq!(cache_runtime::stats(), cache_runtime::Stats::default());

    let warnings = captured.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains("cache_runtime::init"),
        "{}",
        warnings[0]
    );

    // Caching starts as soon as the cache is initialised, without a restart.
    cache_runtime::init(Config::memory()).await.unwrap();
    assert_eq!(lookup(1).await, Ok(1));
    assert_eq!(lookup(1).await, Ok(1));
    assert_eq!(RUNS.load(SeqCst), 7);
    assert_eq!(captured.warnings().len(), 1, "no more warnings");
}
