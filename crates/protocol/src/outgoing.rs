//! Outgoing traffic: connections and datagrams the user process sends that leave from the target's network.
//!
//! On the agent channel the agent owns real sockets and relays bytes with [`ConnectionData`] and
//! [`UdpSend`]/[`UdpReceived`]. On the layer channel the layer only asks the intproxy for a socket to connect
//! to instead ([`OutgoingConnectRequest`] → [`OutgoingConnected`]): the intproxy relays the bytes, so the
//! user process's reads and writes stay plain socket calls that the layer does not hook.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::{
    bytes::Bytes,
    dns::AddressFamily,
    error::RemoteError,
    files::TargetPath,
    ids::{ConnectionId, UdpSocketId},
};

/// Agent channel: connect a TCP socket from the target's network → [`TcpConnected`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpConnectRequest {
    /// Where to connect.
    pub remote: SocketAddr,
}

/// Agent channel: a TCP connection the agent made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpConnected {
    /// Names the connection in later data and close messages.
    pub connection_id: ConnectionId,
    /// The agent socket's own address (what `getsockname` in the user process should report).
    pub agent_local_addr: SocketAddr,
}

/// Bytes on a relayed TCP connection, in either direction (outgoing or incoming, told apart by the message
/// variant). At most [`MAX_IO_CHUNK`](crate::MAX_IO_CHUNK) bytes per message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionData {
    /// The connection.
    pub connection_id: ConnectionId,
    /// The bytes, never empty (the end of a stream is a shutdown message).
    pub data: Bytes,
}

/// A relayed TCP connection ended (outgoing or incoming, told apart by the message variant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionClosed {
    /// The connection.
    pub connection_id: ConnectionId,
    /// Why, when it was not an orderly close.
    pub error: Option<RemoteError>,
}

/// Agent channel: open a UDP socket in the target's network → [`UdpOpened`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UdpOpenRequest {
    /// The family when neither `bind` nor `connect` decides it (`Unspecified` means IPv4).
    pub family: AddressFamily,
    /// Bind to this address first (else an ephemeral port on the wildcard address).
    pub bind: Option<SocketAddr>,
    /// Connect to this peer, so sends may omit the address and only its datagrams are received.
    pub connect: Option<SocketAddr>,
}

/// Agent channel: a UDP socket the agent opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UdpOpened {
    /// Names the socket in later messages.
    pub socket_id: UdpSocketId,
    /// The agent socket's own address.
    pub agent_local_addr: SocketAddr,
}

/// Agent channel, client → agent: send one datagram.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UdpSend {
    /// The socket.
    pub socket_id: UdpSocketId,
    /// The destination; `None` for the connected peer.
    pub to: Option<SocketAddr>,
    /// The datagram.
    pub data: Bytes,
}

/// Agent channel, agent → client: a datagram arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UdpReceived {
    /// The socket.
    pub socket_id: UdpSocketId,
    /// Who sent it.
    pub from: SocketAddr,
    /// The datagram.
    pub data: Bytes,
}

/// Agent channel, agent → client: a UDP socket is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UdpClosed {
    /// The socket.
    pub socket_id: UdpSocketId,
    /// Why, when the client did not ask for it.
    pub error: Option<RemoteError>,
}

/// TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TransportProtocol {
    /// A stream socket.
    Tcp,
    /// A datagram socket.
    Udp,
}

/// Layer channel: the user process connects a socket to `remote` → [`OutgoingConnected`].
///
/// The intproxy opens the connection (or UDP socket) through the agent and a socket of its own for the
/// user process; the layer then connects the user's socket to [`OutgoingConnected::intproxy_addr`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingConnectRequest {
    /// Where the user process wants to connect.
    pub remote: SocketAddr,
    /// The socket's protocol.
    pub protocol: TransportProtocol,
}

/// Layer channel: a listener a process of the session opened on this machine (or closed), so that
/// loopback connections to its port from any process of the session stay local.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalListener {
    /// The port the process asked for.
    pub port: u16,
    /// Where the socket really listens (a loopback address for unspecified binds).
    pub listening_on: SocketAddr,
    /// `true` when it opened, `false` when it closed.
    pub open: bool,
}

/// Layer channel: where the user process's socket should really connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingConnected {
    /// The intproxy's socket that relays to the agent (a loopback address).
    pub intproxy_addr: SocketAddr,
    /// The agent socket's own address, for `getsockname`.
    pub agent_local_addr: SocketAddr,
}

/// Agent channel: connect a unix stream socket to the socket file at `path` inside the target's
/// root (`feature.network.outgoing.unix_streams`) → [`UnixConnected`]. Its bytes then travel like
/// a TCP connection's: [`ConnectionData`] in `OutgoingData` messages, the same shutdown and close
/// messages, and connection ids from the same space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnixConnectRequest {
    /// The socket's path on the target.
    pub path: TargetPath,
}

/// Agent channel: a unix stream connection the agent made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnixConnected {
    /// Names the connection in later data and close messages.
    pub connection_id: ConnectionId,
}

/// Layer channel: the user process connects a unix stream socket to `path`, which
/// `unix_streams` sends to the target → [`OutgoingUnixConnected`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingUnixConnectRequest {
    /// The socket's path, as the process named it.
    pub path: TargetPath,
}

/// Layer channel: where the user process's unix socket should really connect: a unix socket of
/// the intproxy's, in a directory only the session's user can reach, that relays to the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingUnixConnected {
    /// The relay's socket path on this machine.
    pub intproxy_path: TargetPath,
}
