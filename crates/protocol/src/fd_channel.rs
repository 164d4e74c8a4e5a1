//! The layer ↔ agent file-descriptor channel, for targets on the agent's own machine.
//!
//! An agent started on the same machine as the user's process (targets `pid/…` and `sandbox/…`)
//! also listens on a unix socket. There a layer can ask the agent to open a file of the target
//! (with the same confinement as [`FileRequest::Open`](crate::files::FileRequest::Open)) and get
//! the open file descriptor itself, passed as `SCM_RIGHTS` ancillary data. The process then reads,
//! writes, seeks and maps that file with plain system calls, at native speed, and nothing of it
//! travels through the intproxy.
//!
//! The exchange: the layer sends a [`Hello`](crate::Hello) with
//! [`ClientKind::FdClient`](crate::ClientKind::FdClient) and gets a
//! [`HelloReply`](crate::HelloReply); then, any number of times, an [`FdRequest`] answered by one
//! `RemoteResult<FdReply>` frame. When the reply is [`FdReply::Passed`], the descriptor rides on
//! the first byte of that frame: exactly one per such frame, never on any other frame.
//!
//! Outgoing connections use the same channel: [`FdRequest::Connect`] and
//! [`FdRequest::UnixConnect`] make a socket inside the target's network namespace, start its
//! `connect` there and pass the socket itself ([`FdReply::Connected`] or
//! [`FdReply::Connecting`]), so the process's reads and writes are plain system calls on a socket
//! of the target, with nothing relayed.
//!
//! Stolen incoming connections too: under [`SubscriptionMode::StealHandover`] the agent keeps each
//! accepted connection's socket for a moment, and [`FdRequest::TakeIncoming`] passes it to the
//! process that accepted the intproxy's delivery of it ([`FdReply::Connected`]); the process then
//! holds the remote peer's own connection, and nothing of it is relayed.
//!
//! [`SubscriptionMode::StealHandover`]: crate::incoming::SubscriptionMode::StealHandover

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::files::{OpenFlags, TargetPath};

/// What a layer asks on the file-descriptor channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FdRequest {
    /// `open(2)` inside the target's root → [`FdReply::Passed`] with the descriptor, or
    /// [`FdReply::Directory`].
    Open {
        /// The path on the target.
        path: TargetPath,
        /// The `open` flags.
        flags: OpenFlags,
        /// The mode for a created file.
        mode: u32,
    },
    /// A non-blocking stream socket made in the target's network namespace and connected to
    /// `remote` (its family is `remote`'s: an IPv4-mapped IPv6 address makes an IPv6 socket) →
    /// [`FdReply::Connected`] or [`FdReply::Connecting`] with the socket.
    Connect {
        /// Where to connect, as the process gave it.
        remote: SocketAddr,
    },
    /// A non-blocking unix stream socket connected to the socket file at `path` inside the
    /// target's root → [`FdReply::Connected`] or [`FdReply::Connecting`] with the socket.
    UnixConnect {
        /// The socket's path on the target.
        path: TargetPath,
    },
    /// The socket of a stolen connection that the agent keeps for a handover (see
    /// [`SubscriptionMode::StealHandover`](crate::incoming::SubscriptionMode::StealHandover)),
    /// named by the `remote_peer` and `destination` of its `NewIncomingConnection` →
    /// [`FdReply::Connected`] with the socket (non-blocking). `NotFound` when the agent keeps no
    /// such connection (it is already relayed through the intproxy, or gone).
    TakeIncoming {
        /// Who connected.
        remote_peer: SocketAddr,
        /// Where they connected to.
        destination: SocketAddr,
    },
}

/// The successful answer to an [`FdRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FdReply {
    /// The file is open; its descriptor is attached to this frame.
    Passed,
    /// The path is a directory: no descriptor is passed (a directory descriptor would let `*at`
    /// calls relative to it leave the target's root), so the layer opens it the usual way.
    Directory,
    /// The socket is connected; it is attached to this frame.
    Connected,
    /// The socket's `connect` is in progress (`EINPROGRESS`); it is attached to this frame, and
    /// becomes writable when the connection is made or has failed (`SO_ERROR` says which).
    Connecting,
}
