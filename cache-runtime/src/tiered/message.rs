//! The bus protocol: every message a cache instance publishes on `{prefix}:__bus`, typed, with
//! [`Message::encode`] and [`Message::decode`].
//!
//! ```text
//! cr2|H|<source, 16 hex>|<seq>                       heartbeat (the sender times its echo)
//! cr2|I|<source>|<seq>|K|<key>                       a key was written or deleted
//! cr2|I|<source>|<seq>|N|<namespace>                 a namespace was invalidated
//! cr2|I|<source>|<seq>|A|                            the whole cache was invalidated
//! cr2|C|<source>|<origin, 16 hex>|<seq>              <source> applied <origin>'s invalidation <seq>
//! ```
//!
//! An invalidation with `seq` 0 wants no acknowledgement (a write announced after the fact).
//! Numbers have one spelling (lowercase hex, decimal without leading zeros): a decoded message
//! re-encodes to the same bytes.
//! Keys and namespaces are the last field, so they may contain `|`.

use std::fmt::Write as _;

use crate::Error;

const VERSION: &str = "cr2";

/// What an invalidation retires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pending {
    /// One key (full backend key).
    Key(String),
    /// Every entry of a namespace.
    Namespace(String),
    /// Every entry.
    All,
}

/// One bus message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Message {
    Heartbeat { source: u64, seq: u64 },
    Invalidate { source: u64, seq: u64, op: Pending },
    Ack { source: u64, origin: u64, seq: u64 },
}

impl Message {
    /// The instance that sent it.
    pub(crate) fn source(&self) -> u64 {
        match self {
            Message::Heartbeat { source, .. }
            | Message::Invalidate { source, .. }
            | Message::Ack { source, .. } => *source,
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = String::with_capacity(64);
        let _ = match self {
            Message::Heartbeat { source, seq } => write!(out, "{VERSION}|H|{source:016x}|{seq}"),
            Message::Invalidate { source, seq, op } => {
                let (kind, body) = match op {
                    Pending::Key(k) => ('K', k.as_str()),
                    Pending::Namespace(n) => ('N', n.as_str()),
                    Pending::All => ('A', ""),
                };
                write!(out, "{VERSION}|I|{source:016x}|{seq}|{kind}|{body}")
            }
            Message::Ack {
                source,
                origin,
                seq,
            } => write!(out, "{VERSION}|C|{source:016x}|{origin:016x}|{seq}"),
        };
        out.into_bytes()
    }

    /// Parses a message; anything else (another version, garbage) is an error, on which the
    /// receiver flushes its L1 (it may have missed an invalidation it cannot read).
    pub(crate) fn decode(payload: &[u8]) -> Result<Message, Error> {
        let bad = || Error::BadEntry("not a bus message of this version");
        let text = std::str::from_utf8(payload).map_err(|_| bad())?;
        let mut parts = text.splitn(6, '|');
        if parts.next() != Some(VERSION) {
            return Err(bad());
        }
        let kind = parts.next().ok_or_else(bad)?;
        let source = hex_u64(parts.next()).ok_or_else(bad)?;
        let message = match kind {
            "H" => Message::Heartbeat {
                source,
                seq: dec_u64(parts.next()).ok_or_else(bad)?,
            },
            "I" => {
                let seq = dec_u64(parts.next()).ok_or_else(bad)?;
                let op = match (parts.next(), parts.next()) {
                    (Some("K"), Some(key)) => Pending::Key(key.to_owned()),
                    (Some("N"), Some(ns)) => Pending::Namespace(ns.to_owned()),
                    (Some("A"), Some("")) => Pending::All,
                    _ => return Err(bad()),
                };
                Message::Invalidate { source, seq, op }
            }
            "C" => Message::Ack {
                source,
                origin: hex_u64(parts.next()).ok_or_else(bad)?,
                seq: dec_u64(parts.next()).ok_or_else(bad)?,
            },
            _ => return Err(bad()),
        };
        // Heartbeats and acks end with their last number: trailing fields are garbage.
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(message)
    }
}

/// 16 lowercase hex digits, exactly as [`Message::encode`] writes them: one spelling per number.
fn hex_u64(field: Option<&str>) -> Option<u64> {
    let field = field?;
    let canonical = field.len() == 16
        && field
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    canonical
        .then(|| u64::from_str_radix(field, 16).ok())
        .flatten()
}

/// Decimal digits without leading zeros (but `0`), as [`Message::encode`] writes them.
fn dec_u64(field: Option<&str>) -> Option<u64> {
    let field = field?;
    let canonical = !field.is_empty()
        && field.bytes().all(|b| b.is_ascii_digit())
        && (field == "0" || !field.starts_with('0'));
    canonical.then(|| field.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn op() -> impl Strategy<Value = Pending> {
        prop_oneof![
            any::<String>().prop_map(Pending::Key),
            any::<String>().prop_map(Pending::Namespace),
            Just(Pending::All),
        ]
    }

    fn message() -> impl Strategy<Value = Message> {
        prop_oneof![
            (any::<u64>(), any::<u64>())
                .prop_map(|(source, seq)| Message::Heartbeat { source, seq }),
            (any::<u64>(), any::<u64>(), op()).prop_map(|(source, seq, op)| Message::Invalidate {
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn every_message_round_trips(m in message()) {
            prop_assert_eq!(Message::decode(&m.encode()).unwrap(), m);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = Message::decode(&bytes);
        }
    }

    #[test]
    fn source_is_the_sender_of_every_kind() {
        let (a, b, c) = (0x1234_5678_9abc_def0, 42, u64::MAX);
        let op = Pending::All;
        assert_eq!(Message::Heartbeat { source: a, seq: 3 }.source(), a);
        assert_eq!(
            Message::Invalidate {
                source: b,
                seq: 3,
                op
            }
            .source(),
            b
        );
        let ack = Message::Ack {
            source: c,
            origin: a,
            seq: 3,
        };
        assert_eq!(ack.source(), c);
    }

    #[test]
    fn other_versions_and_kinds_are_refused() {
        assert!(Message::decode(b"cr1|0000000000000001|5|K|a").is_err());
        assert!(Message::decode(b"cr2|X|0000000000000001|5").is_err());
        assert!(Message::decode(b"cr2|H|1|5").is_err());
        assert!(Message::decode(b"cr2|H|0000000000000001|5|6").is_err());
        assert!(Message::decode(b"cr2|I|0000000000000001|5|A|x").is_err());
    }
}
