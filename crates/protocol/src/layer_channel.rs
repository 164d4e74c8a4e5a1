//! The layer ↔ intproxy channel: [`LayerToProxy`] and [`ProxyToLayer`].
//!
//! One connection per layer instance (the user process and each forked or exec'd child), opened with a
//! [`Hello`](crate::Hello) whose client is [`ClientKind::Layer`](crate::ClientKind::Layer). The layer sends
//! requests and blocks for their responses; it never relays connection bytes itself: for network traffic it
//! asks the intproxy where to connect, and the intproxy does the relaying (see [`crate::outgoing`] and
//! [`crate::incoming`]).

use serde::{Deserialize, Serialize};

use crate::{
    dns::{AddrInfo, GetAddrInfoRequest},
    env::{EnvVar, GetEnvRequest},
    error::RemoteResult,
    files::{FileRequest, FileResponse},
    ids::RequestId,
    incoming::{
        IncomingConnectionInfo, IncomingConnectionInfoRequest, LayerPortSubscription,
        LayerPortUnsubscription,
    },
    outgoing::{
        LocalListener, OutgoingConnectRequest, OutgoingConnected, OutgoingUnixConnectRequest,
        OutgoingUnixConnected,
    },
};

/// Everything the layer sends after the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LayerToProxy {
    /// A request; exactly one [`ProxyToLayer::Response`] with the same id answers it.
    Request {
        /// Chosen by the layer, unique among its pending requests.
        id: RequestId,
        /// What to do.
        request: LayerRequest,
    },
    /// A heartbeat; answered by [`ProxyToLayer::Pong`] with the same nonce.
    Ping {
        /// Echoed back.
        nonce: u64,
    },
}

/// Everything the intproxy sends to a layer after the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProxyToLayer {
    /// The answer to [`LayerToProxy::Request`] with the same id.
    Response {
        /// The request's id.
        id: RequestId,
        /// The outcome.
        result: RemoteResult<LayerResponse>,
    },
    /// The answer to [`LayerToProxy::Ping`].
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
    /// Unsolicited: the agent connection is gone. Pending requests have been (or are being) answered with
    /// [`ErrorCode::AgentLost`](crate::ErrorCode::AgentLost), and so will every later remote request.
    AgentLost {
        /// Why, for logs.
        message: String,
    },
}

/// What a layer can ask for. The comment on each variant names its [`LayerResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LayerRequest {
    /// A file operation → [`LayerResponse::File`].
    File(FileRequest),
    /// The target's environment → [`LayerResponse::Env`].
    GetEnv(GetEnvRequest),
    /// Name resolution → [`LayerResponse::AddrInfo`].
    GetAddrInfo(GetAddrInfoRequest),
    /// The target's hostname → [`LayerResponse::Hostname`].
    GetHostname,
    /// An outgoing connection → [`LayerResponse::OutgoingConnected`].
    OutgoingConnect(OutgoingConnectRequest),
    /// Receive a target port's traffic → [`LayerResponse::PortSubscribed`].
    PortSubscribe(LayerPortSubscription),
    /// Stop receiving it → [`LayerResponse::PortUnsubscribed`].
    PortUnsubscribe(LayerPortUnsubscription),
    /// The real peer of an accepted connection → [`LayerResponse::IncomingConnectionInfo`].
    IncomingConnectionInfo(IncomingConnectionInfoRequest),
    /// A listener of this process opened or closed on this machine → [`LayerResponse::Noted`].
    /// Kept until closed or until this layer's connection ends.
    LocalListener(LocalListener),
    /// Where a process of the session listens locally for `port`, if one does →
    /// [`LayerResponse::LocalListenerFound`]. Loopback connections to such a port stay local.
    FindLocalListener {
        /// The port the process listened on (as it asked for it).
        port: u16,
    },
    /// A unix stream connection to a socket of the target (since 1.3) →
    /// [`LayerResponse::OutgoingUnixConnected`].
    OutgoingUnixConnect(OutgoingUnixConnectRequest),
}

/// The successful answer to a [`LayerRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LayerResponse {
    /// The answer to [`LayerRequest::File`].
    File(FileResponse),
    /// The selected environment variables.
    Env(Vec<EnvVar>),
    /// The resolved addresses (never empty: no result is [`ErrorCode::NoSuchName`](crate::ErrorCode::NoSuchName)).
    AddrInfo(Vec<AddrInfo>),
    /// The target's hostname.
    Hostname(String),
    /// Where to connect the user's socket.
    OutgoingConnected(OutgoingConnected),
    /// The subscription is active.
    PortSubscribed,
    /// The subscription is gone.
    PortUnsubscribed,
    /// The real ends of an accepted connection.
    IncomingConnectionInfo(IncomingConnectionInfo),
    /// The subscription is active, with a warning for the user (nothing in the target listens on
    /// the port, say).
    PortSubscribedWithWarning(String),
    /// The answer to [`LayerRequest::LocalListener`].
    Noted,
    /// The answer to [`LayerRequest::FindLocalListener`]: where that listener really listens.
    LocalListenerFound(Option<std::net::SocketAddr>),
    /// Where to connect the user's unix socket.
    OutgoingUnixConnected(OutgoingUnixConnected),
}
