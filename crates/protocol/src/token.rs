//! The session token: 32 random bytes that every client shows in its `Hello`, written as 64 hex digits
//! wherever a person or a command line sees it.
//!
//! This crate does no IO, so it does not generate tokens: the CLI fills [`SessionToken::from_bytes`] from
//! the operating system's random source.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// The number of bytes in a session token.
pub const SESSION_TOKEN_LEN: usize = 32;

/// A session's shared secret. Equality is constant-time, and `Debug` does not show the secret.
#[derive(Clone, Serialize, Deserialize)]
pub struct SessionToken([u8; SESSION_TOKEN_LEN]);

impl SessionToken {
    /// Wraps 32 bytes, which must come from a cryptographically secure random source.
    pub const fn from_bytes(bytes: [u8; SESSION_TOKEN_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; SESSION_TOKEN_LEN] {
        &self.0
    }

    /// Compares two tokens in time that does not depend on where they differ.
    pub fn ct_eq(&self, other: &Self) -> bool {
        let difference = self
            .0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        // Keep the optimiser from turning the fold into an early-exit comparison.
        std::hint::black_box(difference) == 0
    }
}

impl PartialEq for SessionToken {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other)
    }
}

impl Eq for SessionToken {}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

/// Lowercase hex, 64 digits.
impl fmt::Display for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// Why a string is not a session token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseSessionTokenError {
    /// The string does not have exactly 64 characters.
    #[error("session token must be {expected} hex digits, got {len} characters", expected = SESSION_TOKEN_LEN * 2)]
    WrongLength {
        /// The length of the rejected string, in characters.
        len: usize,
    },
    /// A character that is not a hex digit.
    #[error("session token has a character that is not a hex digit at position {position}")]
    NotHex {
        /// Zero-based character position.
        position: usize,
    },
}

/// Parses 64 hex digits, upper or lower case, with nothing around them.
impl FromStr for SessionToken {
    type Err = ParseSessionTokenError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let chars: Vec<char> = input.chars().collect();
        if chars.len() != SESSION_TOKEN_LEN * 2 {
            return Err(ParseSessionTokenError::WrongLength { len: chars.len() });
        }
        let digit = |position: usize| {
            chars[position]
                .to_digit(16)
                .map(|value| value as u8)
                .ok_or(ParseSessionTokenError::NotHex { position })
        };
        let mut bytes = [0u8; SESSION_TOKEN_LEN];
        for (index, byte) in bytes.iter_mut().enumerate() {
            *byte = (digit(2 * index)? << 4) | digit(2 * index + 1)?;
        }
        Ok(Self(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(seed: u8) -> SessionToken {
        let mut bytes = [0u8; SESSION_TOKEN_LEN];
        for (index, byte) in bytes.iter_mut().enumerate() {
            *byte = seed.wrapping_mul(31).wrapping_add(index as u8 * 7);
        }
        SessionToken::from_bytes(bytes)
    }

    #[test]
    fn hex_round_trip() {
        let original = token(3);
        let text = original.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text, text.to_lowercase());
        assert_eq!(text.parse::<SessionToken>().unwrap(), original);
        assert_eq!(
            text.to_uppercase().parse::<SessionToken>().unwrap(),
            original
        );
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        assert_eq!(
            "abc".parse::<SessionToken>(),
            Err(ParseSessionTokenError::WrongLength { len: 3 })
        );
        let mut text = token(1).to_string();
        text.replace_range(10..11, "g");
        assert_eq!(
            text.parse::<SessionToken>(),
            Err(ParseSessionTokenError::NotHex { position: 10 })
        );
        // A multi-byte character must not be mistaken for two hex digits or split a byte.
        let text = format!("é{}", &token(1).to_string()[1..]);
        assert_eq!(
            text.parse::<SessionToken>(),
            Err(ParseSessionTokenError::NotHex { position: 0 })
        );
    }

    #[test]
    fn equality_compares_every_byte() {
        let a = token(5);
        for index in 0..SESSION_TOKEN_LEN {
            let mut bytes = *a.as_bytes();
            bytes[index] ^= 0x80;
            assert_ne!(
                SessionToken::from_bytes(bytes),
                a,
                "difference at byte {index} missed"
            );
        }
        assert_eq!(a.clone(), a);
    }

    #[test]
    fn debug_does_not_leak_the_secret() {
        let secret = token(9);
        let debug = format!("{secret:?}");
        assert!(!debug.contains(&secret.to_string()[..8]), "{debug}");
    }
}
