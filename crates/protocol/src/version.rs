//! The protocol version exchanged in the handshake and the rule that decides whether two peers can talk.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// A semver-like protocol version.
///
/// - `major` changes whenever an existing message changes shape; peers with different majors refuse each
///   other.
/// - `minor` changes when enum variants are appended; a peer must not send a variant newer than the minor
///   version the other side announced.
/// - `patch` changes for fixes in meaning that do not touch the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ProtocolVersion {
    /// Incompatible wire changes.
    pub major: u32,
    /// Compatible additions (appended variants).
    pub minor: u32,
    /// Fixes that do not change the wire.
    pub patch: u32,
}

impl ProtocolVersion {
    /// The version this build of the crate speaks.
    ///
    /// 1.1: `FileRequest::Getxattr`/`Listxattr`, `FileResponse::Xattr` and the descriptor socket's
    /// `Connect`/`UnixConnect` appended.
    /// 1.2: `SubscriptionMode::StealHandover` and the descriptor socket's `TakeIncoming` appended.
    /// 1.3: unix stream connections relayed through the intproxy (`AgentRequest::UnixConnect`,
    /// `AgentResponse::UnixConnected`, `LayerRequest::OutgoingUnixConnect`,
    /// `LayerResponse::OutgoingUnixConnected`) appended.
    pub const CURRENT: Self = Self::new(1, 3, 0);

    /// Builds a version from its three parts.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// Whether a peer speaking `other` can talk to a peer speaking `self` (same major version).
    pub const fn is_compatible_with(&self, other: &Self) -> bool {
        self.major == other.major
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Why a string is not a `MAJOR.MINOR.PATCH` version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid protocol version {input:?}: expected MAJOR.MINOR.PATCH")]
pub struct ParseVersionError {
    input: String,
}

impl FromStr for ProtocolVersion {
    type Err = ParseVersionError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let error = || ParseVersionError {
            input: input.to_owned(),
        };
        let mut parts = input.split('.');
        let mut next = || -> Result<u32, ParseVersionError> {
            let part = parts.next().ok_or_else(error)?;
            // `u32::from_str` accepts a leading `+`; a version does not.
            if part.is_empty() || !part.bytes().all(|byte| byte.is_ascii_digit()) {
                return Err(error());
            }
            part.parse().map_err(|_| error())
        };
        let version = Self::new(next()?, next()?, next()?);
        if parts.next().is_some() {
            return Err(error());
        }
        Ok(version)
    }
}

/// Two peers whose major protocol versions differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "incompatible mirrord protocol versions: this side speaks {ours}, the peer speaks {theirs} \
     (the major versions must match; use the same mirrord version on both sides)"
)]
pub struct IncompatibleVersion {
    /// The version of the side reporting the error.
    pub ours: ProtocolVersion,
    /// The version the peer announced.
    pub theirs: ProtocolVersion,
}

/// Checks that a peer announcing `theirs` can talk to us (`ours`); the error names both versions.
pub fn check_compatible(
    ours: ProtocolVersion,
    theirs: ProtocolVersion,
) -> Result<(), IncompatibleVersion> {
    if ours.is_compatible_with(&theirs) {
        Ok(())
    } else {
        Err(IncompatibleVersion { ours, theirs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_major_is_compatible_whatever_the_minor() {
        assert!(
            check_compatible(ProtocolVersion::new(1, 0, 0), ProtocolVersion::new(1, 7, 3)).is_ok()
        );
    }

    #[test]
    fn major_mismatch_names_both_versions() {
        let error = check_compatible(ProtocolVersion::new(1, 2, 0), ProtocolVersion::new(2, 0, 1))
            .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("1.2.0"), "{message}");
        assert!(message.contains("2.0.1"), "{message}");
    }

    #[test]
    fn parse_and_display_agree() {
        for input in ["0.0.0", "1.0.0", "12.345.6789"] {
            assert_eq!(input.parse::<ProtocolVersion>().unwrap().to_string(), input);
        }
        for bad in [
            "", "1", "1.2", "1.2.3.4", "1..3", "a.b.c", "+1.2.3", "1.2.-3", " 1.2.3",
        ] {
            assert!(bad.parse::<ProtocolVersion>().is_err(), "{bad:?} parsed");
        }
    }
}
