//! The intproxy ↔ agent channel: [`ClientToAgent`] and [`AgentToClient`].
//!
//! One connection per session, opened with a [`Hello`](crate::Hello) whose client is
//! [`ClientKind::IntProxy`](crate::ClientKind::IntProxy) and carrying the work of every layer instance.
//! Besides requests and responses it carries connection bytes in both directions, as messages that need no
//! answer.

use serde::{Deserialize, Serialize};

use crate::{
    dns::{AddrInfo, GetAddrInfoRequest},
    env::{EnvVar, GetEnvRequest},
    error::RemoteResult,
    files::{FileRequest, FileResponse},
    ids::{ConnectionId, RequestId, UdpSocketId},
    incoming::{NewIncomingConnection, PortSubscription},
    outgoing::{
        ConnectionClosed, ConnectionData, TcpConnectRequest, TcpConnected, UdpClosed,
        UdpOpenRequest, UdpOpened, UdpReceived, UdpSend, UnixConnectRequest, UnixConnected,
    },
};

/// Everything the client (the intproxy) sends to the agent after the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientToAgent {
    /// A request; exactly one [`AgentToClient::Response`] with the same id answers it.
    Request {
        /// Chosen by the client, unique among its pending requests.
        id: RequestId,
        /// What to do.
        request: AgentRequest,
    },
    /// A heartbeat; answered by [`AgentToClient::Pong`] with the same nonce.
    Ping {
        /// Echoed back.
        nonce: u64,
    },
    /// Bytes to write to an outgoing connection.
    OutgoingData(ConnectionData),
    /// No more bytes will be written to an outgoing connection (`shutdown(SHUT_WR)`).
    OutgoingShutdown {
        /// The connection.
        connection_id: ConnectionId,
    },
    /// Close an outgoing connection; the agent answers nothing.
    OutgoingClose {
        /// The connection.
        connection_id: ConnectionId,
    },
    /// Send a datagram from an agent UDP socket.
    UdpSend(UdpSend),
    /// Close an agent UDP socket; the agent answers nothing.
    UdpClose {
        /// The socket.
        socket_id: UdpSocketId,
    },
    /// Bytes to write back to the peer of a stolen incoming connection (dropped for mirrored ones).
    IncomingData(ConnectionData),
    /// No more bytes will be written back to an incoming connection.
    IncomingShutdown {
        /// The connection.
        connection_id: ConnectionId,
    },
    /// Close an incoming connection (a stolen one is closed towards its peer).
    IncomingClose {
        /// The connection.
        connection_id: ConnectionId,
    },
}

/// Everything the agent sends to its client after the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentToClient {
    /// The answer to [`ClientToAgent::Request`] with the same id.
    Response {
        /// The request's id.
        id: RequestId,
        /// The outcome.
        result: RemoteResult<AgentResponse>,
    },
    /// The answer to [`ClientToAgent::Ping`].
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
    /// Bytes that arrived on an outgoing connection.
    OutgoingData(ConnectionData),
    /// The remote end of an outgoing connection finished sending (end of stream).
    OutgoingShutdown {
        /// The connection.
        connection_id: ConnectionId,
    },
    /// An outgoing connection is gone (not sent after the client's own `OutgoingClose`).
    OutgoingClosed(ConnectionClosed),
    /// A datagram arrived on an agent UDP socket.
    UdpReceived(UdpReceived),
    /// An agent UDP socket is gone (not sent after the client's own `UdpClose`).
    UdpClosed(UdpClosed),
    /// A connection (or, under an HTTP filter, a request) arrived at a subscribed port.
    IncomingConnection(NewIncomingConnection),
    /// Bytes from the peer of an incoming connection.
    IncomingData(ConnectionData),
    /// The peer of an incoming connection finished sending.
    IncomingShutdown {
        /// The connection.
        connection_id: ConnectionId,
    },
    /// An incoming connection is gone (not sent after the client's own `IncomingClose`).
    IncomingClosed(ConnectionClosed),
}

/// What the client can ask the agent for. The comment on each variant names its [`AgentResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentRequest {
    /// A file operation in the target's root → [`AgentResponse::File`].
    File(FileRequest),
    /// The target's environment → [`AgentResponse::Env`].
    GetEnv(GetEnvRequest),
    /// Name resolution with the target's resolver → [`AgentResponse::AddrInfo`].
    GetAddrInfo(GetAddrInfoRequest),
    /// The target's hostname → [`AgentResponse::Hostname`].
    GetHostname,
    /// Connect from the target's network → [`AgentResponse::TcpConnected`].
    TcpConnect(TcpConnectRequest),
    /// Open a UDP socket in the target's network → [`AgentResponse::UdpOpened`].
    UdpOpen(UdpOpenRequest),
    /// Receive a target port's traffic → [`AgentResponse::PortSubscribed`].
    PortSubscribe(PortSubscription),
    /// Stop receiving it → [`AgentResponse::PortUnsubscribed`].
    PortUnsubscribe {
        /// The target's port.
        port: u16,
    },
    /// Connect a unix stream socket inside the target (since 1.3) → [`AgentResponse::UnixConnected`].
    UnixConnect(UnixConnectRequest),
}

/// The successful answer to an [`AgentRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentResponse {
    /// The answer to [`AgentRequest::File`].
    File(FileResponse),
    /// The selected environment variables.
    Env(Vec<EnvVar>),
    /// The resolved addresses (never empty: no result is [`ErrorCode::NoSuchName`](crate::ErrorCode::NoSuchName)).
    AddrInfo(Vec<AddrInfo>),
    /// The target's hostname.
    Hostname(String),
    /// The connection is up.
    TcpConnected(TcpConnected),
    /// The socket is open.
    UdpOpened(UdpOpened),
    /// The subscription is active.
    PortSubscribed,
    /// The subscription is gone.
    PortUnsubscribed,
    /// The subscription is active, with a warning for the user (nothing in the target listens on
    /// the port, say).
    PortSubscribedWithWarning(String),
    /// The unix stream connection is up (since 1.3).
    UnixConnected(UnixConnected),
}
