//! The handshake that opens every connection, on both channels: the client's [`Hello`] and the server's
//! [`HelloReply`]. Nothing else is sent or served before it.
//!
//! These two types are frozen: their encoding never changes, in any version, so that peers of any two
//! versions can always tell each other that they do not match.

use serde::{Deserialize, Serialize};

use crate::{
    token::SessionToken,
    version::{IncompatibleVersion, ProtocolVersion, check_compatible},
};

/// The first frame a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version the client speaks.
    pub protocol_version: ProtocolVersion,
    /// The session's shared secret.
    pub session_token: SessionToken,
    /// Who is connecting.
    pub client: ClientKind,
}

impl Hello {
    /// A hello for [`ProtocolVersion::CURRENT`].
    pub fn new(session_token: SessionToken, client: ClientKind) -> Self {
        Self {
            protocol_version: ProtocolVersion::CURRENT,
            session_token,
            client,
        }
    }

    /// The server's answer to this hello: `Welcome` when the major version matches `ours` and the token is
    /// `expected_token`, else `Refused` with a reason that names the problem.
    pub fn answer(&self, ours: ProtocolVersion, expected_token: &SessionToken) -> HelloReply {
        if let Err(mismatch) = check_compatible(ours, self.protocol_version) {
            return HelloReply::Refused {
                reason: format!(
                    "protocol version mismatch: the server speaks {}, the client speaks {} \
                     (the major versions must match)",
                    mismatch.ours, mismatch.theirs
                ),
            };
        }
        if !self.session_token.ct_eq(expected_token) {
            return HelloReply::Refused {
                reason: "wrong session token".to_owned(),
            };
        }
        HelloReply::Welcome {
            protocol_version: ours,
        }
    }
}

/// Who sends a [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientKind {
    /// A layer instance (to the intproxy): one per process, so a forked or exec'd child says hello again.
    Layer {
        /// The process id.
        pid: u32,
        /// The parent's process id, when the parent was already part of the session (a forked child).
        parent_pid: Option<u32>,
    },
    /// The intproxy (to the agent).
    IntProxy,
    /// A layer instance on the agent's own machine, asking the agent for file descriptors over its
    /// unix socket (see [`crate::fd_channel`]).
    FdClient {
        /// The process id.
        pid: u32,
    },
}

/// The server's answer to a [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HelloReply {
    /// The session is open; the server speaks this version.
    Welcome {
        /// The server's protocol version (same major as the client's).
        protocol_version: ProtocolVersion,
    },
    /// The server will not serve this client and closes the connection.
    Refused {
        /// Why, for people.
        reason: String,
    },
}

impl HelloReply {
    /// Client side: the server's version when it welcomed us and it is compatible with `ours`.
    pub fn check(self, ours: ProtocolVersion) -> Result<ProtocolVersion, HandshakeError> {
        match self {
            Self::Welcome { protocol_version } => {
                check_compatible(ours, protocol_version)?;
                Ok(protocol_version)
            }
            Self::Refused { reason } => Err(HandshakeError::Refused { reason }),
        }
    }
}

/// Why a handshake failed on the client side.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The server refused the client.
    #[error("the server refused the connection: {reason}")]
    Refused {
        /// The server's reason.
        reason: String,
    },
    /// The server welcomed us with a version we cannot speak.
    #[error(transparent)]
    Incompatible(#[from] IncompatibleVersion),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(byte: u8) -> SessionToken {
        SessionToken::from_bytes([byte; 32])
    }

    #[test]
    fn matching_version_and_token_are_welcomed() {
        let hello = Hello::new(token(1), ClientKind::IntProxy);
        let reply = hello.answer(ProtocolVersion::new(1, 4, 0), &token(1));
        assert_eq!(
            reply,
            HelloReply::Welcome {
                protocol_version: ProtocolVersion::new(1, 4, 0)
            }
        );
        assert_eq!(
            reply.check(ProtocolVersion::CURRENT),
            Ok(ProtocolVersion::new(1, 4, 0))
        );
    }

    #[test]
    fn wrong_token_is_refused() {
        let hello = Hello::new(
            token(1),
            ClientKind::Layer {
                pid: 7,
                parent_pid: None,
            },
        );
        let reply = hello.answer(ProtocolVersion::CURRENT, &token(2));
        let error = reply.check(ProtocolVersion::CURRENT).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the server refused the connection: wrong session token"
        );
    }

    #[test]
    fn major_mismatch_is_refused_naming_both_versions() {
        let mut hello = Hello::new(token(1), ClientKind::IntProxy);
        hello.protocol_version = ProtocolVersion::new(2, 0, 0);
        let HelloReply::Refused { reason } = hello.answer(ProtocolVersion::new(1, 3, 0), &token(1))
        else {
            panic!("a major mismatch was welcomed");
        };
        assert!(
            reason.contains("2.0.0") && reason.contains("1.3.0"),
            "{reason}"
        );
    }

    #[test]
    fn client_rejects_an_incompatible_welcome() {
        let reply = HelloReply::Welcome {
            protocol_version: ProtocolVersion::new(9, 0, 0),
        };
        let error = reply.check(ProtocolVersion::new(1, 0, 0)).unwrap_err();
        assert!(matches!(error, HandshakeError::Incompatible(_)));
        assert!(error.to_string().contains("9.0.0"));
    }
}
