//! Fuzz tests of the decoders that read bytes from the network: the envelope of stored values
//! ([`crate::envelope::open`]) and the bus messages ([`crate::tiered::message`]).
//!
//! `cargo fuzz` needs a nightly toolchain and libFuzzer, so these are proptest runs instead:
//! arbitrary bytes, and valid encodings mutated (bit flips, byte changes, truncations,
//! insertions, extensions), must never panic, and whatever decodes must re-encode to the very
//! same bytes (one encoding per value: no two byte strings mean the same thing). The normal
//! test run does a short pass; a long one:
//!
//! ```text
//! FUZZ_CASES=2000000 cargo test -p cache-runtime --release --lib fuzz
//! ```

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::envelope;
use crate::namespace::Gens;
use crate::tiered::message::{Message, Pending};

/// Cases per property: `FUZZ_CASES`, or a short pass of a few seconds.
fn runner() -> TestRunner {
    let cases = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(4_000);
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// One change to a byte string, at a position taken modulo its length.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(usize, u8),
    SetByte(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Extend(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let bytes = || prop::collection::vec(any::<u8>(), 1..12);
    prop_oneof![
        (any::<usize>(), 0..8u8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), bytes()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        bytes().prop_map(Mutation::Extend),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
        let len = bytes.len();
        match m {
            Mutation::FlipBit(i, b) if len > 0 => bytes[at(*i, len)] ^= 1 << b,
            Mutation::SetByte(i, b) if len > 0 => bytes[at(*i, len)] = *b,
            Mutation::Truncate(i) => bytes.truncate(at(*i, len + 1)),
            Mutation::Insert(i, b) => {
                let i = at(*i, len + 1);
                bytes.splice(i..i, b.iter().copied());
            }
            Mutation::Extend(b) => bytes.extend_from_slice(b),
            _ => {}
        }
    }
    bytes
}

/// Text that often looks like a field of a bus message.
fn field() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[0-9a-fA-F|+-]{0,20}", "cr2\\|[HICKNA]\\|"]
}

fn message() -> impl Strategy<Value = Message> {
    let op = prop_oneof![
        field().prop_map(Pending::Key),
        field().prop_map(Pending::Namespace),
        Just(Pending::All),
    ];
    prop_oneof![
        (any::<u64>(), any::<u64>()).prop_map(|(source, seq)| Message::Heartbeat { source, seq }),
        (any::<u64>(), any::<u64>(), op).prop_map(|(source, seq, op)| Message::Invalidate {
            source,
            seq,
            op
        }),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(source, origin, seq)| {
            Message::Ack {
                source,
                origin,
                seq,
            }
        }),
    ]
}

/// Decoding never panics, and a decoded message re-encodes to the same bytes.
fn check_message(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(m) = Message::decode(bytes) {
        prop_assert_eq!(m.encode(), bytes, "{:?} decoded from other bytes", m);
    }
    Ok(())
}

fn envelope_bytes() -> impl Strategy<Value = Vec<u8>> {
    let header = (any::<u8>(), any::<[u8; 4]>(), any::<[u64; 4]>());
    (header, prop::collection::vec(any::<u8>(), 0..40)).prop_map(|((codec, tag, n), payload)| {
        let gens = Gens {
            namespace: n[0],
            all: n[1],
            path: 0,
        };
        let mut bytes = envelope::start(codec, tag, gens, n[2], n[3], payload.len());
        bytes.extend_from_slice(&payload);
        bytes
    })
}

/// Opening never panics, and an opened envelope re-encodes to the same bytes.
fn check_envelope(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(e) = envelope::open(bytes) {
        let mut again = envelope::start(
            e.codec,
            e.type_tag,
            e.gens,
            e.created_ms,
            e.expires_ms,
            e.payload.len(),
        );
        again.extend_from_slice(e.payload);
        prop_assert_eq!(again, bytes);
    }
    Ok(())
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..4)
}

#[test]
fn fuzz_bus_message_arbitrary_bytes() {
    let bytes = prop::collection::vec(any::<u8>(), 0..96);
    runner().run(&bytes, |b| check_message(&b)).unwrap();
}

#[test]
fn fuzz_bus_message_mutated() {
    let cases = (message(), mutations());
    runner()
        .run(&cases, |(m, ms)| {
            check_message(&m.encode())?;
            check_message(&mutate(m.encode(), &ms))
        })
        .unwrap();
}

#[test]
fn fuzz_envelope_arbitrary_bytes() {
    let bytes = prop::collection::vec(any::<u8>(), 0..96);
    runner().run(&bytes, |b| check_envelope(&b)).unwrap();
}

#[test]
fn fuzz_envelope_mutated() {
    let cases = (envelope_bytes(), mutations());
    runner()
        .run(&cases, |(b, ms)| {
            prop_assert!(envelope::open(&b).is_ok());
            check_envelope(&mutate(b, &ms))
        })
        .unwrap();
}

#[test]
fn non_canonical_numbers_are_refused() {
    for bytes in [
        &b"cr2|H|000000000000000A|5"[..],
        b"cr2|H|+00000000000000a|5",
        b"cr2|H|000000000000000a|05",
        b"cr2|C|000000000000000a|000000000000000B|5",
        b"cr2|I|000000000000000a|007|A|",
    ] {
        assert!(
            Message::decode(bytes).is_err(),
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
    assert!(Message::decode(b"cr2|H|000000000000000a|0").is_ok());
}
