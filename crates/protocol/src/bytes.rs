//! [`Bytes`]: the byte payload of file reads and writes, connection data and datagrams. It travels as one
//! byte string and prints as its length, so logging a 1 MiB read does not print a megabyte.

use std::{fmt, ops::Deref};

use serde::{Deserialize, Serialize};

/// An owned byte payload.
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Bytes(#[serde(with = "crate::wire_bytes")] pub Vec<u8>);

/// The longest payload that `Debug` shows in full; longer ones show only their length.
const DEBUG_SHOWN_LEN: usize = 32;

impl Bytes {
    /// Gives the bytes back.
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

impl Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl From<&[u8]> for Bytes {
    fn from(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }
}

impl<const N: usize> From<&[u8; N]> for Bytes {
    fn from(bytes: &[u8; N]) -> Self {
        Self(bytes.to_vec())
    }
}

impl From<Bytes> for Vec<u8> {
    fn from(bytes: Bytes) -> Self {
        bytes.0
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.len() > DEBUG_SHOWN_LEN {
            return write!(f, "Bytes(<{} bytes>)", self.0.len());
        }
        f.write_str("Bytes(b\"")?;
        for &byte in &self.0 {
            write!(f, "{}", byte.escape_ascii())?;
        }
        f.write_str("\")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_short_payloads_and_the_length_of_long_ones() {
        assert_eq!(
            format!("{:?}", Bytes::from(b"GET /\r\n")),
            r#"Bytes(b"GET /\r\n")"#
        );
        assert_eq!(
            format!("{:?}", Bytes::from(vec![0; 33])),
            "Bytes(<33 bytes>)"
        );
    }

    #[test]
    fn encodes_as_length_then_raw_bytes() {
        let encoded = postcard::to_stdvec(&Bytes::from(b"abc")).unwrap();
        assert_eq!(encoded, b"\x03abc");
    }
}
