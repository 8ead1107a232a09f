//! The history of a checker run and the rule it is checked against: per key, a *regular
//! register*. A read must not return a version older than one whose write (database update,
//! then cache invalidation) had returned `Ok` before the read began.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// One recorded operation.
#[derive(Debug, Clone)]
pub enum Event {
    /// A cached read of `key` that returned `version`, between `start` and `end`.
    Read {
        who: String,
        key: u64,
        version: u64,
        start: Instant,
        end: Instant,
    },
    /// `version` of `key` was written to the database, and its invalidation returned `Ok` at
    /// `done`.
    Write {
        key: u64,
        version: u64,
        done: Instant,
        how: &'static str,
    },
}

/// All events of a run, from every worker.
#[derive(Default)]
pub struct History(Mutex<Vec<Event>>);

impl History {
    pub fn record(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }

    /// Counts of reads and writes recorded.
    pub fn counts(&self) -> (usize, usize) {
        let events = self.0.lock().unwrap();
        let reads = events
            .iter()
            .filter(|e| matches!(e, Event::Read { .. }))
            .count();
        (reads, events.len() - reads)
    }

    /// Every read that returned a version overwritten by a write completed before it began.
    pub fn violations(&self) -> Vec<String> {
        let events = self.0.lock().unwrap();
        // Per key: the writes, by completion time; for each read, the newest version whose
        // write completed before the read started.
        let mut writes: HashMap<u64, Vec<(Instant, u64, &'static str)>> = HashMap::new();
        for e in events.iter() {
            if let Event::Write {
                key,
                version,
                done,
                how,
            } = e
            {
                writes
                    .entry(*key)
                    .or_default()
                    .push((*done, *version, *how));
            }
        }
        for list in writes.values_mut() {
            list.sort();
        }
        let mut found = Vec::new();
        for e in events.iter() {
            let Event::Read {
                who,
                key,
                version,
                start,
                end,
            } = e
            else {
                continue;
            };
            let required = writes
                .get(key)
                .into_iter()
                .flatten()
                .take_while(|(done, _, _)| done < start)
                .max_by_key(|(_, v, _)| *v);
            if let Some((done, required, how)) = required
                && version < required
            {
                found.push(format!(
                    "{who}: key {key} read version {version} in a read of {:?}, but version \
                     {required} was written and invalidated ({how}) {:?} before it began",
                    end.duration_since(*start),
                    start.duration_since(*done)
                ));
            }
        }
        found
    }
}

#[test]
fn the_rule_catches_a_stale_read_and_accepts_concurrent_ones() {
    let t0 = Instant::now();
    let t = |ms| t0 + std::time::Duration::from_millis(ms);
    let h = History::default();
    h.record(Event::Write {
        key: 1,
        version: 2,
        done: t(10),
        how: "delete",
    });
    let read = |version, start, end| Event::Read {
        who: "w".into(),
        key: 1,
        version,
        start: t(start),
        end: t(end),
    };
    h.record(read(1, 5, 20)); // overlaps the write: either version is fine
    h.record(read(2, 11, 12));
    assert!(h.violations().is_empty());
    h.record(read(1, 11, 12)); // began after the write returned: stale
    assert_eq!(h.violations().len(), 1);
    assert_eq!(h.counts(), (3, 1));
}
