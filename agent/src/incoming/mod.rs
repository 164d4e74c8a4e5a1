//! Incoming traffic: a client subscribes a port of the target, the agent redirects that port's
//! connections to a listener of its own in the target's network namespace, and delivers them:
//!
//! - **steal**: the connection goes to the client (the user's process answers);
//! - **mirror**: the agent forwards the connection to the target's own service and sends the
//!   client a copy of what the remote peer sent ("passthrough": nothing is lost under load, and it
//!   works with keep-alive and TLS); the client's answers are discarded;
//! - **steal with an HTTP filter**: see [`http`];
//! - **steal with handover** (a client on this machine): see [`handover`].
//!
//! Redirects live in an nftables table owned by the agent's netlink socket ([`nft`]), so they
//! vanish with the agent whatever happens to it.

pub(crate) mod client_stream;
pub(crate) mod flush;
pub(crate) mod handover;
pub(crate) mod http;
pub(crate) mod iptables;
pub(crate) mod netlink;
pub(crate) mod nft;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use mirrord_protocol::agent_channel::AgentToClient;
use mirrord_protocol::ids::ConnectionId;
use mirrord_protocol::incoming::{NewIncomingConnection, PortSubscription, SubscriptionMode};
use mirrord_protocol::outgoing::{ConnectionClosed, ConnectionData};
use mirrord_protocol::{Bytes, ErrorCode, RemoteError, RemoteResult};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;

use crate::namespace::NamespaceWorker;

/// What an incoming connection needs from the client session that owns the subscription.
pub(crate) trait IncomingSink: Send + Sync + 'static {
    /// A new connection id, and the channel the client's data for it arrives on.
    fn register(&self) -> (ConnectionId, mpsc::UnboundedReceiver<ClientData>);
    /// Forgets a connection.
    fn forget(&self, connection_id: ConnectionId);
    /// Queues a message for the client.
    fn send(&self, message: AgentToClient) -> impl std::future::Future<Output = bool> + Send;
}

/// What the client sends for an incoming connection.
#[derive(Debug)]
pub(crate) enum ClientData {
    /// Bytes to write to the remote peer.
    Data(Vec<u8>),
    /// The client will send no more.
    Shutdown,
}

/// A live subscription: dropping it stops accepting (the redirect is removed by the owner).
#[derive(Debug)]
pub(crate) struct Subscription {
    accept_task: tokio::task::JoinHandle<()>,
    /// The agent's listener port in the target's namespace.
    pub(crate) listener_port: u16,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

/// Opens the listener for `subscription` in the target's namespace and starts accepting.
pub(crate) async fn subscribe<S: IncomingSink>(
    namespace: &NamespaceWorker,
    subscription: &PortSubscription,
    handover: Option<Arc<handover::Handover>>,
    sink: Arc<S>,
) -> RemoteResult<Subscription> {
    let fd = namespace
        .socket(libc::AF_INET, libc::SOCK_STREAM)
        .await
        .map_err(|e| RemoteError::from(&e))?;
    let socket = TcpSocket::from_std_stream(std::net::TcpStream::from(fd));
    socket
        .set_reuseaddr(true)
        .map_err(|e| RemoteError::from(&e))?;
    socket
        .bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
        .map_err(|e| RemoteError::from(&e))?;
    let listener = socket.listen(1024).map_err(|e| RemoteError::from(&e))?;
    let listener_port = listener
        .local_addr()
        .map_err(|e| RemoteError::from(&e))?
        .port();
    let port = subscription.port;
    let mode = subscription.mode.clone();
    let filter = match &mode {
        SubscriptionMode::StealHttp(filter) => Some(Arc::new(
            http::CompiledFilter::compile(filter)
                .map_err(|message| RemoteError::new(ErrorCode::InvalidInput, message))?,
        )),
        _ => None,
    };
    let namespace = namespace.clone();
    let accept_task = tokio::spawn(accept_loop(
        listener, port, mode, filter, handover, namespace, sink,
    ));
    Ok(Subscription {
        accept_task,
        listener_port,
    })
}

async fn accept_loop<S: IncomingSink>(
    listener: TcpListener,
    port: u16,
    mode: SubscriptionMode,
    filter: Option<Arc<http::CompiledFilter>>,
    handover: Option<Arc<handover::Handover>>,
    namespace: NamespaceWorker,
    sink: Arc<S>,
) {
    loop {
        let Ok((stream, remote_peer)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let destination = original_destination(&stream).unwrap_or_else(|| {
            let local = stream
                .local_addr()
                .map(|a| a.ip())
                .unwrap_or(Ipv4Addr::LOCALHOST.into());
            SocketAddr::new(local, port)
        });
        let sink = Arc::clone(&sink);
        let namespace = namespace.clone();
        match (&mode, &filter, &handover) {
            (SubscriptionMode::StealHandover, _, Some(handover)) => {
                let new = NewIncomingConnection {
                    connection_id: ConnectionId(0),
                    remote_peer,
                    destination,
                    port,
                };
                tokio::spawn(handover::steal(stream, new, Arc::clone(handover), sink));
            }
            (SubscriptionMode::Steal | SubscriptionMode::StealHandover, _, _) => {
                tokio::spawn(steal(stream, remote_peer, destination, port, sink));
            }
            (SubscriptionMode::Mirror, _, _) => {
                tokio::spawn(mirror(
                    stream,
                    remote_peer,
                    destination,
                    port,
                    namespace,
                    sink,
                ));
            }
            (SubscriptionMode::StealHttp(_), Some(filter), _) => {
                let filter = Arc::clone(filter);
                tokio::spawn(http::serve_connection(
                    stream,
                    remote_peer,
                    destination,
                    port,
                    filter,
                    namespace,
                    sink,
                ));
            }
            (SubscriptionMode::StealHttp(_), None, _) => {}
        }
    }
}

/// The destination the remote peer connected to, before the redirect (`SO_ORIGINAL_DST`).
fn original_destination(stream: &TcpStream) -> Option<SocketAddr> {
    // SAFETY: `sockaddr_in` is a plain C struct for which all-zero bytes are valid.
    let mut address: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut length = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: the socket is open; `address` and `length` are valid for writes of the sizes given.
    let result = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_IP,
            libc::SO_ORIGINAL_DST,
            (&raw mut address).cast(),
            &raw mut length,
        )
    };
    if result != 0 || i32::from(address.sin_family) != libc::AF_INET {
        return None;
    }
    let ip = Ipv4Addr::from(u32::from_be(address.sin_addr.s_addr));
    Some(SocketAddr::V4(SocketAddrV4::new(
        ip,
        u16::from_be(address.sin_port),
    )))
}

/// Connects to the target's own service from inside its namespace (not redirected: local
/// connections never pass the prerouting chain).
pub(crate) async fn connect_to_target(
    namespace: &NamespaceWorker,
    destination: SocketAddr,
) -> std::io::Result<TcpStream> {
    let domain = if destination.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let fd = namespace.socket(domain, libc::SOCK_STREAM).await?;
    let socket = TcpSocket::from_std_stream(std::net::TcpStream::from(fd));
    let stream = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        socket.connect(destination),
    )
    .await
    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

async fn announce<S: IncomingSink>(
    sink: &S,
    remote_peer: SocketAddr,
    destination: SocketAddr,
    port: u16,
) -> Option<(ConnectionId, mpsc::UnboundedReceiver<ClientData>)> {
    let (connection_id, from_client) = sink.register();
    let new = NewIncomingConnection {
        connection_id,
        remote_peer,
        destination,
        port,
    };
    if sink.send(AgentToClient::IncomingConnection(new)).await {
        Some((connection_id, from_client))
    } else {
        sink.forget(connection_id);
        None
    }
}

/// Steal: the whole connection goes to the client.
async fn steal<S: IncomingSink>(
    stream: TcpStream,
    remote_peer: SocketAddr,
    destination: SocketAddr,
    port: u16,
    sink: Arc<S>,
) {
    let Some((connection_id, from_client)) = announce(&*sink, remote_peer, destination, port).await
    else {
        return;
    };
    relay_to_client(stream, connection_id, None, from_client, &*sink).await;
    sink.forget(connection_id);
}

/// Relays `stream` to the client as connection `connection_id` until both sides are done;
/// `pending` is what the client sent for it before the relay started.
pub(crate) async fn relay_to_client<
    S: IncomingSink,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
>(
    stream: T,
    connection_id: ConnectionId,
    pending: Option<ClientData>,
    mut from_client: mpsc::UnboundedReceiver<ClientData>,
    sink: &S,
) {
    // The directions run independently: writing to a slow reader must never stop us reading.
    let (mut read_half, mut write_half) = tokio::io::split(stream);
    let peer_to_client = async {
        let mut buffer = vec![0u8; 128 * 1024];
        loop {
            match read_half.read(&mut buffer).await {
                Ok(0) => {
                    sink.send(AgentToClient::IncomingShutdown { connection_id })
                        .await;
                    return Ok(());
                }
                Ok(length) => {
                    let data = ConnectionData {
                        connection_id,
                        data: Bytes::from(buffer[..length].to_vec()),
                    };
                    if !sink.send(AgentToClient::IncomingData(data)).await {
                        return Err(None);
                    }
                }
                Err(e) => return Err(Some(RemoteError::from(&e))),
            }
        }
    };
    let client_to_peer = async {
        let mut pending = pending;
        while let Some(data) = match pending.take() {
            Some(data) => Some(data),
            None => from_client.recv().await,
        } {
            match data {
                ClientData::Data(bytes) => {
                    if let Err(e) = write_half.write_all(&bytes).await {
                        return Err(Some(RemoteError::from(&e)));
                    }
                }
                ClientData::Shutdown => {
                    let _ = write_half.shutdown().await;
                    return Ok(());
                }
            }
        }
        // The client closed the connection.
        Err(None)
    };
    let mut peer_to_client = std::pin::pin!(peer_to_client);
    let mut client_to_peer = std::pin::pin!(client_to_peer);
    let outcome: Result<(), Option<RemoteError>> = tokio::select! {
        done = &mut peer_to_client => match done {
            Ok(()) => client_to_peer.await,
            Err(error) => Err(error),
        },
        done = &mut client_to_peer => match done {
            Ok(()) => peer_to_client.await,
            Err(error) => Err(error),
        },
    };
    let error = outcome.err().flatten();
    sink.send(AgentToClient::IncomingClosed(ConnectionClosed {
        connection_id,
        error,
    }))
    .await;
}

/// Mirror: the target's service answers; the client gets a copy of what the peer sends.
async fn mirror<S: IncomingSink>(
    stream: TcpStream,
    remote_peer: SocketAddr,
    destination: SocketAddr,
    port: u16,
    namespace: NamespaceWorker,
    sink: Arc<S>,
) {
    let service = match connect_to_target(&namespace, destination).await {
        Ok(service) => service,
        Err(error) => {
            tracing::debug!(%destination, %error, "cannot reach the target's own service; dropping the mirrored connection");
            return;
        }
    };
    let copy = announce(&*sink, remote_peer, destination, port).await;
    let (mut peer_read, mut peer_write) = stream.into_split();
    let (mut service_read, mut service_write) = service.into_split();
    let connection_id = copy.as_ref().map(|(id, _)| *id);
    // Whatever the client answers on a mirrored connection is discarded.
    drop(copy);
    let to_service = {
        let sink = Arc::clone(&sink);
        async move {
            let mut buffer = vec![0u8; 128 * 1024];
            loop {
                match peer_read.read(&mut buffer).await {
                    Ok(0) | Err(_) => {
                        let _ = service_write.shutdown().await;
                        if let Some(connection_id) = connection_id {
                            sink.send(AgentToClient::IncomingShutdown { connection_id })
                                .await;
                        }
                        return;
                    }
                    Ok(length) => {
                        if service_write.write_all(&buffer[..length]).await.is_err() {
                            return;
                        }
                        if let Some(connection_id) = connection_id {
                            let data = ConnectionData {
                                connection_id,
                                data: Bytes::from(buffer[..length].to_vec()),
                            };
                            sink.send(AgentToClient::IncomingData(data)).await;
                        }
                    }
                }
            }
        }
    };
    let to_peer = async move {
        let _ = tokio::io::copy(&mut service_read, &mut peer_write).await;
        let _ = peer_write.shutdown().await;
    };
    tokio::join!(to_service, to_peer);
    if let Some(connection_id) = connection_id {
        sink.send(AgentToClient::IncomingClosed(ConnectionClosed {
            connection_id,
            error: None,
        }))
        .await;
        sink.forget(connection_id);
    }
}
