//! Codecs turn values into the bytes stored in Redis and back.
//!
//! `Bincode` (bincode 2 over serde) is the default: compact and fast. `Json` (feature
//! `json`) is readable in `redis-cli` and tolerant of added fields. The in-memory backend stores
//! typed values and never runs a codec on a hit.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;

/// A serialization format for stored values.
///
/// Each codec has a one-byte [`Codec::ID`] written into every entry's envelope, so bytes
/// written by another codec are detected and treated as a miss instead of being misread.
pub trait Codec {
    /// The byte that marks entries written by this codec.
    const ID: u8;
    /// Encodes `value`, appending to `out`.
    fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), Error>;
    /// Decodes a whole value from `bytes`; trailing bytes are an error.
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error>;
}

/// bincode 2 with its standard configuration, through serde. The default codec.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bincode;

impl Codec for Bincode {
    const ID: u8 = 1;

    fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), Error> {
        bincode::serde::encode_into_std_write(value, out, bincode::config::standard())
            .map(|_| ())
            .map_err(|e| Error::Codec(e.to_string()))
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
        let (value, read) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())
            .map_err(|e| Error::Codec(e.to_string()))?;
        if read != bytes.len() {
            return Err(Error::Codec(format!(
                "{} trailing bytes",
                bytes.len() - read
            )));
        }
        Ok(value)
    }
}

/// JSON through `serde_json`. Needs the `json` feature.
#[cfg(feature = "json")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

#[cfg(feature = "json")]
impl Codec for Json {
    const ID: u8 = 2;

    fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), Error> {
        serde_json::to_writer(out, value).map_err(|e| Error::Codec(e.to_string()))
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
        serde_json::from_slice(bytes).map_err(|e| Error::Codec(e.to_string()))
    }
}

/// The format of values stored in Redis; chosen with [`crate::Config::codec`].
///
/// ```
/// let config = cache_runtime::Config::memory().codec(cache_runtime::CodecKind::Bincode);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecKind {
    /// bincode 2 through serde: compact and fast. The default.
    #[default]
    Bincode,
    /// JSON through `serde_json` (feature `json`): readable in `redis-cli`, tolerant of added
    /// fields.
    #[cfg(feature = "json")]
    Json,
}

impl CodecKind {
    pub(crate) fn id(self) -> u8 {
        match self {
            CodecKind::Bincode => Bincode::ID,
            #[cfg(feature = "json")]
            CodecKind::Json => Json::ID,
        }
    }

    pub(crate) fn encode_into<T: Serialize + ?Sized>(
        self,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        match self {
            CodecKind::Bincode => Bincode::encode_into(value, out),
            #[cfg(feature = "json")]
            CodecKind::Json => Json::encode_into(value, out),
        }
    }

    pub(crate) fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, Error> {
        match self {
            CodecKind::Bincode => Bincode::decode(bytes),
            #[cfg(feature = "json")]
            CodecKind::Json => Json::decode(bytes),
        }
    }

    /// The encoded size of `value`, without keeping the bytes (used to weigh memory entries).
    pub(crate) fn encoded_size<T: Serialize + ?Sized>(self, value: &T) -> Result<usize, Error> {
        struct Count(usize);
        impl std::io::Write for Count {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0 += buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut count = Count(0);
        match self {
            CodecKind::Bincode => {
                bincode::serde::encode_into_std_write(
                    value,
                    &mut count,
                    bincode::config::standard(),
                )
                .map_err(|e| Error::Codec(e.to_string()))?;
            }
            #[cfg(feature = "json")]
            CodecKind::Json => {
                serde_json::to_writer(&mut count, value).map_err(|e| Error::Codec(e.to_string()))?
            }
        }
        Ok(count.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bincode_round_trips_and_rejects_trailing_bytes() {
        let mut out = Vec::new();
        Bincode::encode_into(&("abc", 7u32), &mut out).unwrap();
        assert_eq!(
            Bincode::decode::<(String, u32)>(&out).unwrap(),
            ("abc".into(), 7)
        );
        assert_eq!(
            CodecKind::Bincode.encoded_size(&("abc", 7u32)).unwrap(),
            out.len()
        );
        out.push(0);
        assert!(Bincode::decode::<(String, u32)>(&out).is_err());
    }

    #[test]
    fn each_kind_encodes_with_its_own_codec_and_id() {
        let mut out = Vec::new();
        CodecKind::Bincode
            .encode_into(&("abc", 7u32), &mut out)
            .unwrap();
        assert_eq!(
            CodecKind::Bincode.decode::<(String, u32)>(&out).unwrap(),
            ("abc".into(), 7)
        );
        assert_eq!(CodecKind::Bincode.id(), Bincode::ID);
        #[cfg(feature = "json")]
        {
            let mut json = Vec::new();
            CodecKind::Json
                .encode_into(&("abc", 7u32), &mut json)
                .unwrap();
            assert_eq!(json, br#"["abc",7]"#);
            assert_eq!(
                CodecKind::Json.decode::<(String, u32)>(&json).unwrap(),
                ("abc".into(), 7)
            );
            assert!(CodecKind::Json.decode::<(String, u32)>(b"[1]").is_err());
            // Envelopes tell the codecs apart by these ids: they must differ.
            assert_eq!(CodecKind::Json.id(), Json::ID);
            assert_ne!(CodecKind::Json.id(), CodecKind::Bincode.id());
        }
    }
}
