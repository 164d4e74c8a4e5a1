//! Opaque identifiers that travel on the wire: request ids, file and directory handles, connection and
//! UDP socket ids. All are plain `u64` newtypes so that they cannot be mixed up with one another.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! wire_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl From<u64> for $name {
            fn from(value: u64) -> Self {
                Self(value)
            }
        }
    };
}

wire_id! {
    /// Chosen by whoever sends a request; the matching response echoes it. Unique among the sender's
    /// requests that are still waiting for a response on one connection.
    RequestId
}

wire_id! {
    /// An open file in the agent, returned by an open request. Opaque: only the agent knows what it means.
    FileHandle
}

wire_id! {
    /// An open directory stream in the agent, returned by an opendir request.
    DirHandle
}

wire_id! {
    /// A TCP connection relayed by the agent: an outgoing connection it made, or an incoming connection it
    /// delivers. Outgoing and incoming ids are separate spaces, told apart by the message variant.
    ConnectionId
}

wire_id! {
    /// A UDP socket the agent opened on a client's behalf.
    UdpSocketId
}
