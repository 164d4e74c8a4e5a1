//! One layer instance's connection: its handshake, its requests, and the relays it opened.

use std::sync::Arc;
use std::time::Duration;

use mirrord_protocol::agent_channel::{AgentRequest, AgentResponse};
use mirrord_protocol::files::TargetPath;
use mirrord_protocol::frame::{FrameDecoder, encode};
use mirrord_protocol::handshake::{ClientKind, Hello, HelloReply};
use mirrord_protocol::layer_channel::{LayerRequest, LayerResponse, LayerToProxy, ProxyToLayer};
use mirrord_protocol::outgoing::{
    TcpConnectRequest, TransportProtocol, UdpOpenRequest, UnixConnectRequest,
};
use mirrord_protocol::token::SessionToken;
use mirrord_protocol::version::ProtocolVersion;
use mirrord_protocol::{ErrorCode, RemoteError, RemoteResult};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::agent_link::AgentLink;
use crate::incoming::IncomingRegistry;
use crate::read_ahead::Files;
use crate::relay;
use crate::unix_relay::{self, UnixRelays};

/// How long a layer has to finish its hello, from the moment it was accepted (not reset by each byte).
pub(crate) const HELLO_DEADLINE: Duration = Duration::from_secs(5);
/// Requests of one layer being served at once; beyond that the intproxy stops reading from the layer
/// until one is answered, so a layer pipelining requests cannot grow the intproxy's memory.
const MAX_IN_FLIGHT: usize = 128;

/// Serves one layer until it disconnects. `handshake` is the connection's place among those not yet
/// authenticated (see `lib.rs`), given back once the hello is answered.
pub(crate) async fn serve(
    stream: TcpStream,
    link: Arc<AgentLink>,
    incoming: Arc<IncomingRegistry>,
    files: Arc<Files>,
    unix_relays: Arc<UnixRelays>,
    token: SessionToken,
    handshake: tokio::sync::OwnedSemaphorePermit,
) {
    let (mut reader, mut writer) = stream.into_split();
    let mut decoder = FrameDecoder::new();
    let mut buffer = vec![0u8; 64 * 1024];

    let read_hello = async {
        loop {
            match decoder.pop::<Hello>() {
                Ok(Some(hello)) => return Some(hello),
                Ok(None) => {}
                Err(_) => return None,
            }
            match reader.read(&mut buffer).await {
                Ok(read) if read > 0 => decoder.push(&buffer[..read]),
                _ => return None,
            }
        }
    };
    let Ok(Some(hello)) = tokio::time::timeout(HELLO_DEADLINE, read_hello).await else {
        tracing::debug!("dropped a layer connection without a hello");
        return;
    };
    let reply = hello.answer(ProtocolVersion::CURRENT, &token);
    let welcome = matches!(reply, HelloReply::Welcome { .. });
    let Ok(frame) = encode(&reply) else { return };
    if writer.write_all(&frame).await.is_err() || !welcome {
        return;
    }
    drop(handshake);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let pid = match hello.client {
        ClientKind::Layer { pid, .. } => Some(pid),
        ClientKind::IntProxy | ClientKind::FdClient { .. } => None,
    };
    tracing::info!(?pid, "layer connected");
    static CONNECTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let owner = CONNECTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);

    let (outbox, mut outbox_rx) = mpsc::channel::<ProxyToLayer>(64);
    let writer_task = tokio::spawn(async move {
        while let Some(message) = outbox_rx.recv().await {
            let Ok(frame) = encode(&message) else {
                continue;
            };
            if writer.write_all(&frame).await.is_err() {
                break;
            }
        }
    });
    // Tell the layer as soon as the agent is gone, so it fails fast without asking.
    let mut lost = link.lost();
    let lost_outbox = outbox.clone();
    let lost_task = tokio::spawn(async move {
        loop {
            let current = lost.borrow_and_update().clone();
            if let Some(message) = current {
                let _ = lost_outbox.send(ProxyToLayer::AgentLost { message }).await;
                return;
            }
            if lost.changed().await.is_err() {
                return;
            }
        }
    });
    let relays = relay::RelayOwner::default();
    let subscribed: Arc<std::sync::Mutex<Vec<u16>>> = Arc::default();

    loop {
        let message = match decoder.pop::<LayerToProxy>() {
            Ok(Some(message)) => message,
            Ok(None) => match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => {
                    decoder.push(&buffer[..read]);
                    continue;
                }
            },
            Err(error) if error.is_fatal() => break,
            Err(_) => continue,
        };
        match message {
            LayerToProxy::Ping { nonce } => {
                let _ = outbox.send(ProxyToLayer::Pong { nonce }).await;
            }
            LayerToProxy::Request { id, request } => {
                let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
                    break;
                };
                let (link, outbox, relays) = (Arc::clone(&link), outbox.clone(), relays.clone());
                let (incoming, subscribed) = (Arc::clone(&incoming), Arc::clone(&subscribed));
                let (files, unix_relays) = (Arc::clone(&files), Arc::clone(&unix_relays));
                tokio::spawn(async move {
                    let _permit = permit;
                    let result = match request {
                        LayerRequest::LocalListener(listener) => {
                            incoming.local_listener(owner, listener);
                            Ok(LayerResponse::Noted)
                        }
                        LayerRequest::OutgoingUnixConnect(request) => {
                            unix_connect(&link, unix_relays, request.path).await
                        }
                        request => {
                            handle(&link, &relays, &incoming, &files, &subscribed, request).await
                        }
                    };
                    let _ = outbox.send(ProxyToLayer::Response { id, result }).await;
                });
            }
        }
    }
    tracing::info!(?pid, "layer disconnected");
    relays.close_all(&link).await;
    incoming.forget_local(owner);
    let ports = std::mem::take(
        &mut *subscribed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    for port in ports {
        incoming.unlisten(port);
        let _ = link.request(AgentRequest::PortUnsubscribe { port }).await;
    }
    lost_task.abort();
    drop(outbox);
    let _ = writer_task.await;
}

async fn handle(
    link: &Arc<AgentLink>,
    relays: &relay::RelayOwner,
    incoming: &IncomingRegistry,
    files: &Files,
    subscribed: &std::sync::Mutex<Vec<u16>>,
    request: LayerRequest,
) -> RemoteResult<LayerResponse> {
    let forward = |request| async move { link.request(request).await.result };
    match request {
        LayerRequest::File(request) => files.request(request).await.map(LayerResponse::File),
        LayerRequest::GetEnv(request) => match forward(AgentRequest::GetEnv(request)).await? {
            AgentResponse::Env(vars) => Ok(LayerResponse::Env(vars)),
            other => Err(unexpected(&other)),
        },
        LayerRequest::GetAddrInfo(request) => {
            match forward(AgentRequest::GetAddrInfo(request)).await? {
                AgentResponse::AddrInfo(addresses) => Ok(LayerResponse::AddrInfo(addresses)),
                other => Err(unexpected(&other)),
            }
        }
        LayerRequest::GetHostname => match forward(AgentRequest::GetHostname).await? {
            AgentResponse::Hostname(name) => Ok(LayerResponse::Hostname(name)),
            other => Err(unexpected(&other)),
        },
        LayerRequest::OutgoingConnect(request) => {
            let completion = match request.protocol {
                TransportProtocol::Tcp => {
                    link.request(AgentRequest::TcpConnect(TcpConnectRequest {
                        remote: request.remote,
                    }))
                    .await
                }
                TransportProtocol::Udp => {
                    let open = UdpOpenRequest {
                        family: mirrord_protocol::dns::AddressFamily::of(&request.remote),
                        bind: None,
                        connect: Some(request.remote),
                    };
                    link.request(AgentRequest::UdpOpen(open)).await
                }
            };
            let events = completion.events;
            match (completion.result?, events) {
                (AgentResponse::TcpConnected(connected), Some(events)) => {
                    relay::start_tcp(Arc::clone(link), connected, events)
                        .await
                        .map(LayerResponse::OutgoingConnected)
                }
                (AgentResponse::UdpOpened(opened), Some(events)) => {
                    relay::start_udp(Arc::clone(link), relays, opened, events)
                        .await
                        .map(LayerResponse::OutgoingConnected)
                }
                (other, _) => Err(unexpected(&other)),
            }
        }
        LayerRequest::PortSubscribe(request) => {
            let port = request.subscription.port;
            incoming.listen(port, request.listening_on);
            match forward(AgentRequest::PortSubscribe(request.subscription)).await {
                Ok(
                    response @ (AgentResponse::PortSubscribed
                    | AgentResponse::PortSubscribedWithWarning(_)),
                ) => {
                    subscribed
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(port);
                    Ok(match response {
                        AgentResponse::PortSubscribedWithWarning(warning) => {
                            LayerResponse::PortSubscribedWithWarning(warning)
                        }
                        _ => LayerResponse::PortSubscribed,
                    })
                }
                Ok(other) => Err(unexpected(&other)),
                Err(error) => {
                    incoming.unlisten(port);
                    Err(error)
                }
            }
        }
        LayerRequest::PortUnsubscribe(request) => {
            let port = request.port;
            incoming.unlisten(port);
            subscribed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .retain(|&p| p != port);
            match forward(AgentRequest::PortUnsubscribe { port }).await? {
                AgentResponse::PortUnsubscribed => Ok(LayerResponse::PortUnsubscribed),
                other => Err(unexpected(&other)),
            }
        }
        LayerRequest::LocalListener(_) => Ok(LayerResponse::Noted),
        // Served by `unix_connect`, which holds the intproxy's relay directory.
        LayerRequest::OutgoingUnixConnect(_) => Err(RemoteError::new(
            ErrorCode::Io,
            "a unix connect reached the wrong handler",
        )),
        LayerRequest::FindLocalListener { port } => {
            Ok(LayerResponse::LocalListenerFound(incoming.find_local(port)))
        }
        LayerRequest::IncomingConnectionInfo(request) => incoming
            .peer(request.intproxy_addr)
            .map(LayerResponse::IncomingConnectionInfo)
            .ok_or_else(|| {
                RemoteError::new(
                    ErrorCode::NotFound,
                    "no incoming connection from that address",
                )
            }),
    }
}

/// A unix stream connection to `path` in the target, relayed through a unix socket of ours.
async fn unix_connect(
    link: &Arc<AgentLink>,
    unix_relays: Arc<UnixRelays>,
    path: TargetPath,
) -> RemoteResult<LayerResponse> {
    let completion = link
        .request(AgentRequest::UnixConnect(UnixConnectRequest { path }))
        .await;
    match (completion.result?, completion.events) {
        (AgentResponse::UnixConnected(connected), Some(events)) => unix_relay::start(
            Arc::clone(link),
            unix_relays,
            connected.connection_id,
            events,
        )
        .await
        .map(LayerResponse::OutgoingUnixConnected),
        (other, _) => Err(unexpected(&other)),
    }
}

pub(crate) fn unexpected(response: &AgentResponse) -> RemoteError {
    RemoteError::new(
        ErrorCode::Io,
        format!("the agent answered with an unexpected response: {response:?}"),
    )
}
