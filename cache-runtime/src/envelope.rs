//! The envelope around every value stored in Redis.
//!
//! ```text
//! magic "\xCA\xC7" | format 1 | codec id | type tag (4) | namespace gen (8) | cache gen (8)
//!                  | created at, unix ms (8) | expires at, unix ms, 0 = never (8) | codec bytes
//! ```
//!
//! Bytes that do not start with the magic, carry another format byte, another codec or another
//! type tag are not decoded: the lookup counts a `decode_error`, runs the body and overwrites
//! the entry. Integers are little-endian.

use crate::Error;
use crate::namespace::Gens;

const MAGIC: [u8; 2] = [0xCA, 0xC7];
/// The envelope format this build writes and reads.
pub(crate) const FORMAT: u8 = 1;
const HEADER_LEN: usize = 2 + 1 + 1 + 4 + 8 * 4;

/// A decoded envelope, borrowing its payload.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Envelope<'a> {
    pub(crate) codec: u8,
    pub(crate) type_tag: [u8; 4],
    pub(crate) gens: Gens,
    pub(crate) created_ms: u64,
    pub(crate) expires_ms: u64,
    pub(crate) payload: &'a [u8],
}

/// Writes the header; the caller appends the codec bytes.
pub(crate) fn start(
    codec: u8,
    type_tag: [u8; 4],
    gens: Gens,
    created_ms: u64,
    expires_ms: u64,
    payload_hint: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload_hint);
    out.extend_from_slice(&MAGIC);
    out.push(FORMAT);
    out.push(codec);
    out.extend_from_slice(&type_tag);
    let gens = gens.stored();
    for n in [gens.namespace, gens.all, created_ms, expires_ms] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    out
}

/// Bytes 4 to 24 (1-based) of a valid entry's envelope for this codec, type and generations:
/// what the fill-lease script compares to recognise an entry it must not overwrite.
pub(crate) fn identity(codec: u8, type_tag: [u8; 4], gens: Gens) -> [u8; 21] {
    let gens = gens.stored();
    let mut out = [0u8; 21];
    out[0] = codec;
    out[1..5].copy_from_slice(&type_tag);
    out[5..13].copy_from_slice(&gens.namespace.to_le_bytes());
    out[13..21].copy_from_slice(&gens.all.to_le_bytes());
    out
}

/// Parses an envelope; any deviation is an [`Error::BadEntry`].
pub(crate) fn open(bytes: &[u8]) -> Result<Envelope<'_>, Error> {
    if bytes.len() < HEADER_LEN || bytes[..2] != MAGIC {
        return Err(Error::BadEntry("not a cache-runtime entry"));
    }
    if bytes[2] != FORMAT {
        return Err(Error::BadEntry("entry of another envelope format"));
    }
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let mut type_tag = [0u8; 4];
    type_tag.copy_from_slice(&bytes[4..8]);
    Ok(Envelope {
        codec: bytes[3],
        type_tag,
        gens: Gens {
            namespace: u64_at(8),
            all: u64_at(16),
            path: 0,
        },
        created_ms: u64_at(24),
        expires_ms: u64_at(32),
        payload: &bytes[HEADER_LEN..],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let gens = Gens {
            namespace: 3,
            all: 9,
            path: 0,
        };
        let mut bytes = start(1, [1, 2, 3, 4], gens, 100, 200, 3);
        bytes.extend_from_slice(b"abc");
        let env = open(&bytes).unwrap();
        assert_eq!(env.gens, gens);
        assert_eq!(
            (env.codec, env.type_tag, env.created_ms, env.expires_ms),
            (1, [1, 2, 3, 4], 100, 200)
        );
        assert_eq!(env.payload, b"abc");
    }

    #[test]
    fn identity_is_what_a_stored_header_holds_at_bytes_4_to_24() {
        for path in [0, 5] {
            let gens = Gens {
                namespace: 3,
                all: 9,
                path,
            };
            let header = start(2, [1, 2, 3, 4], gens, 100, 200, 0);
            assert_eq!(header[3..24], identity(2, [1, 2, 3, 4], gens));
            let other = Gens { all: 10, ..gens };
            assert_ne!(header[3..24], identity(2, [1, 2, 3, 4], other));
        }
    }

    #[test]
    fn foreign_and_truncated_bytes_are_rejected() {
        assert!(open(b"hello world, this is not an entry at all!!").is_err());
        let mut bytes = start(1, [0; 4], Gens::default(), 0, 0, 0);
        assert!(open(&bytes[..10]).is_err());
        bytes[2] = FORMAT + 1;
        assert!(open(&bytes).is_err());
    }
}
