//! One client connection (an intproxy): the handshake, then requests and relayed traffic until it
//! disconnects. Everything the client opened (files, connections, sockets) dies with it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mirrord_protocol::agent_channel::{AgentRequest, AgentResponse, AgentToClient, ClientToAgent};
use mirrord_protocol::fd_channel::FdReply;
use mirrord_protocol::files::TargetPath;
use mirrord_protocol::frame::{FrameDecoder, MAX_IO_CHUNK, encode};
use mirrord_protocol::handshake::{Hello, HelloReply};
use mirrord_protocol::ids::{ConnectionId, UdpSocketId};
use mirrord_protocol::outgoing::{
    ConnectionClosed, ConnectionData, TcpConnected, UdpClosed, UdpOpened, UdpReceived,
    UnixConnected,
};
use mirrord_protocol::version::ProtocolVersion;
use mirrord_protocol::{Bytes, ErrorCode, RemoteError, RemoteResult};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use crate::AgentContext;
use crate::files::FileTable;
use crate::incoming::{self, ClientData, IncomingSink, Subscription};
use crate::link_writer::write_queued;

/// Messages queued for the client; bounded so a slow client slows its connections down instead of
/// growing memory.
const OUTBOX_CAPACITY: usize = 256;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client has to finish its hello, from the moment it was accepted (not reset by each
/// byte it sends).
pub(crate) const HELLO_DEADLINE: Duration = Duration::from_secs(5);
/// Requests of one client being served at once; beyond that the agent stops reading from the
/// client until one is answered, so a client pipelining requests cannot grow the agent's memory.
const MAX_IN_FLIGHT: usize = 256;

type Outbox = mpsc::Sender<AgentToClient>;

#[derive(Default)]
struct Relays {
    next_id: u64,
    connections: HashMap<u64, mpsc::UnboundedSender<ClientData>>,
    udp_sockets: HashMap<u64, Arc<UdpSocket>>,
    /// Relays that wait for their open response to be queued before sending any data.
    starts: HashMap<u64, tokio::sync::oneshot::Sender<()>>,
}

struct Session {
    context: Arc<AgentContext>,
    outbox: Outbox,
    files: Arc<Mutex<FileTable>>,
    relays: Arc<Mutex<Relays>>,
    /// This client's port subscriptions; their redirects are removed when it leaves.
    subscriptions: Mutex<HashMap<u16, Subscription>>,
}

impl IncomingSink for Session {
    fn register(&self) -> (ConnectionId, mpsc::UnboundedReceiver<ClientData>) {
        let (data_tx, data_rx) = mpsc::unbounded_channel();
        let mut relays = self
            .relays
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        relays.next_id += 1;
        let id = relays.next_id;
        relays.connections.insert(id, data_tx);
        (ConnectionId(id), data_rx)
    }

    fn forget(&self, connection_id: ConnectionId) {
        self.relays
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .connections
            .remove(&connection_id.0);
    }

    fn send(&self, message: AgentToClient) -> impl std::future::Future<Output = bool> + Send {
        let outbox = self.outbox.clone();
        async move { outbox.send(message).await.is_ok() }
    }
}

/// What became of a client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// It never finished a hello with the session's token in time.
    Unauthenticated,
    /// It was served, and has now disconnected.
    Served,
}

/// How long a client that sends heartbeats (every 2 s) may send nothing before it is taken as
/// gone.
const HEARTBEAT_SILENCE: Duration = Duration::from_secs(10);

/// Serves one client until it disconnects. `handshake` is this connection's place among the
/// connections not yet authenticated (see `main.rs`); it is given back once the hello is answered.
/// `welcomed` is called once the client is welcomed.
pub(crate) async fn serve(
    stream: TcpStream,
    context: Arc<AgentContext>,
    handshake: tokio::sync::OwnedSemaphorePermit,
    welcomed: impl FnOnce(),
) -> Ended {
    let peer = stream.peer_addr().ok();
    let (mut reader, writer) = stream.into_split();
    let mut decoder = FrameDecoder::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut writer = writer;

    // The handshake: nothing is served before a hello with our token and major version, and a
    // client that has not sent one within the deadline is dropped.
    let hello = tokio::time::timeout(
        HELLO_DEADLINE,
        read_one::<Hello>(&mut reader, &mut decoder, &mut buffer),
    )
    .await;
    let Ok(Some(hello)) = hello else {
        tracing::debug!(?peer, "dropped a client without a hello");
        return Ended::Unauthenticated;
    };
    let reply = hello.answer(ProtocolVersion::CURRENT, &context.token);
    let welcome = matches!(reply, HelloReply::Welcome { .. });
    if let HelloReply::Refused { reason } = &reply {
        tracing::info!(?peer, %reason, "refused a client");
    }
    if write_message(&mut writer, &reply).await.is_err() || !welcome {
        return Ended::Unauthenticated;
    }
    drop(handshake);
    welcomed();
    tracing::info!(?peer, client = ?hello.client, "client connected");
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));

    let (outbox, mut outbox_rx) = mpsc::channel::<AgentToClient>(OUTBOX_CAPACITY);
    let writer_task = tokio::spawn(async move {
        let _ = write_queued(&mut outbox_rx, &mut writer, "client").await;
    });
    let session = Arc::new(Session {
        context,
        outbox,
        files: Arc::new(Mutex::new(FileTable::default())),
        relays: Arc::new(Mutex::new(Relays::default())),
        subscriptions: Mutex::new(HashMap::new()),
    });
    // Once a client sends heartbeats (an intproxy behind a port-forward, whose far end may stay
    // open when the intproxy is killed), their silence ends the session.
    let mut heartbeats = false;
    loop {
        let message = match decoder.pop::<ClientToAgent>() {
            Ok(Some(message)) => message,
            Ok(None) => {
                let read = reader.read(&mut buffer);
                let read = if heartbeats {
                    match tokio::time::timeout(HEARTBEAT_SILENCE, read).await {
                        Ok(read) => read,
                        Err(_) => {
                            tracing::info!(
                                ?peer,
                                seconds = HEARTBEAT_SILENCE.as_secs(),
                                "the client's heartbeats stopped; it is gone"
                            );
                            break;
                        }
                    }
                } else {
                    read.await
                };
                match read {
                    Ok(0) | Err(_) => break,
                    Ok(read) => {
                        decoder.push(&buffer[..read]);
                        continue;
                    }
                }
            }
            Err(error) if error.is_fatal() => {
                tracing::debug!(?peer, %error, "undecodable stream from client");
                break;
            }
            Err(error) => {
                tracing::debug!(?peer, %error, "skipped an undecodable frame");
                continue;
            }
        };
        heartbeats |= matches!(message, ClientToAgent::Ping { .. });
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            break;
        };
        session.dispatch(message, permit).await;
    }
    tracing::info!(?peer, "client disconnected");
    session.unsubscribe_all();
    drop(session);
    writer_task.abort();
    Ended::Served
}

async fn read_one<T: serde::de::DeserializeOwned>(
    reader: &mut tokio::net::tcp::OwnedReadHalf,
    decoder: &mut FrameDecoder,
    buffer: &mut [u8],
) -> Option<T> {
    loop {
        match decoder.pop::<T>() {
            Ok(Some(message)) => return Some(message),
            Ok(None) => {}
            Err(_) => return None,
        }
        let read = reader.read(buffer).await.ok()?;
        if read == 0 {
            return None;
        }
        decoder.push(&buffer[..read]);
    }
}

async fn write_message<T: serde::Serialize>(
    writer: &mut OwnedWriteHalf,
    message: &T,
) -> std::io::Result<()> {
    let frame = encode(message).map_err(std::io::Error::other)?;
    writer.write_all(&frame).await
}

impl Session {
    /// Handles one message; `permit` is its place among the requests in flight, held until a request
    /// is answered.
    async fn dispatch(
        self: &Arc<Self>,
        message: ClientToAgent,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) {
        match message {
            ClientToAgent::Request { id, request } => {
                let session = Arc::clone(self);
                tokio::spawn(async move {
                    let _permit = permit;
                    let result = session.request(request).await;
                    let opened = match &result {
                        Ok(AgentResponse::TcpConnected(connected)) => {
                            Some(connected.connection_id.0)
                        }
                        Ok(AgentResponse::UnixConnected(connected)) => {
                            Some(connected.connection_id.0)
                        }
                        Ok(AgentResponse::UdpOpened(opened)) => Some(opened.socket_id.0),
                        _ => None,
                    };
                    let _ = session
                        .outbox
                        .send(AgentToClient::Response { id, result })
                        .await;
                    if let Some(relay) = opened {
                        let start = session
                            .relays
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .starts
                            .remove(&relay);
                        if let Some(start) = start {
                            let _ = start.send(());
                        }
                    }
                });
            }
            ClientToAgent::Ping { nonce } => {
                let _ = self.outbox.send(AgentToClient::Pong { nonce }).await;
            }
            ClientToAgent::OutgoingData(ConnectionData {
                connection_id,
                data,
            }) => {
                self.command(connection_id, ClientData::Data(data.into_vec()));
            }
            ClientToAgent::OutgoingShutdown { connection_id } => {
                self.command(connection_id, ClientData::Shutdown)
            }
            ClientToAgent::OutgoingClose { connection_id } => {
                self.relays
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .connections
                    .remove(&connection_id.0);
            }
            ClientToAgent::UdpSend(send) => {
                let socket = self
                    .relays
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .udp_sockets
                    .get(&send.socket_id.0)
                    .cloned();
                if let Some(socket) = socket {
                    let result = match send.to {
                        Some(to) => socket.send_to(&send.data, to).await,
                        None => socket.send(&send.data).await,
                    };
                    if let Err(error) = result {
                        tracing::debug!(%error, "udp send failed");
                    }
                }
            }
            ClientToAgent::UdpClose { socket_id } => {
                self.relays
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .udp_sockets
                    .remove(&socket_id.0);
            }
            ClientToAgent::IncomingData(ConnectionData {
                connection_id,
                data,
            }) => {
                self.command(connection_id, ClientData::Data(data.into_vec()));
            }
            ClientToAgent::IncomingShutdown { connection_id } => {
                self.command(connection_id, ClientData::Shutdown)
            }
            ClientToAgent::IncomingClose { connection_id } => self.forget(connection_id),
        }
    }

    fn command(&self, connection_id: ConnectionId, command: ClientData) {
        let relays = self
            .relays
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(sender) = relays.connections.get(&connection_id.0) {
            let _ = sender.send(command);
        }
    }

    async fn request(self: &Arc<Self>, request: AgentRequest) -> RemoteResult<AgentResponse> {
        let context = &self.context;
        match request {
            AgentRequest::File(request) => {
                let (context, files) = (Arc::clone(context), Arc::clone(&self.files));
                tokio::task::spawn_blocking(move || context.root.handle(&files, request))
                    .await
                    .map_err(|_| RemoteError::new(ErrorCode::Io, "the file operation panicked"))?
                    .map(AgentResponse::File)
            }
            AgentRequest::GetEnv(request) => crate::env::target_env(context.target_pid, &request)
                .map(AgentResponse::Env)
                .map_err(|error| RemoteError::from(&error)),
            AgentRequest::GetAddrInfo(request) => crate::dns::getaddrinfo(
                &context.namespace,
                &context.resolver,
                context.dns_limits,
                &request,
            )
            .await
            .map(AgentResponse::AddrInfo),
            AgentRequest::GetHostname => context
                .namespace
                .hostname()
                .await
                .map(AgentResponse::Hostname)
                .map_err(|e| RemoteError::from(&e)),
            AgentRequest::TcpConnect(request) => self
                .tcp_connect(request.remote)
                .await
                .map(AgentResponse::TcpConnected),
            AgentRequest::UdpOpen(request) => {
                self.udp_open(request).await.map(AgentResponse::UdpOpened)
            }
            AgentRequest::PortSubscribe(subscription) => {
                let port = subscription.port;
                self.subscribe(subscription).await?;
                Ok(match self.context.unlistened_warning(port).await {
                    Some(warning) => {
                        tracing::warn!(port, "{warning}");
                        AgentResponse::PortSubscribedWithWarning(warning)
                    }
                    None => AgentResponse::PortSubscribed,
                })
            }
            AgentRequest::PortUnsubscribe { port } => {
                self.unsubscribe(port);
                Ok(AgentResponse::PortUnsubscribed)
            }
            AgentRequest::UnixConnect(request) => self
                .unix_connect(request.path)
                .await
                .map(AgentResponse::UnixConnected),
        }
    }

    async fn subscribe(
        self: &Arc<Self>,
        subscription: mirrord_protocol::incoming::PortSubscription,
    ) -> RemoteResult<()> {
        let port = subscription.port;
        if !self.context.claim_port(port) {
            return Err(RemoteError::new(
                ErrorCode::AddrInUse,
                format!("port {port} of the target is already taken by another mirrord session"),
            ));
        }
        let result = async {
            let handle = incoming::subscribe(
                &self.context.namespace,
                &subscription,
                self.context.handover.clone(),
                Arc::clone(self),
            )
            .await?;
            self.context.redirect(port, handle.listener_port).await?;
            let steals = !matches!(
                subscription.mode,
                mirrord_protocol::incoming::SubscriptionMode::Mirror
            );
            if steals && self.context.flush_connections {
                self.context.flush_connections(port).await;
            }
            Ok(handle)
        }
        .await;
        match result {
            Ok(handle) => {
                tracing::info!(port, mode = ?subscription.mode, "port subscribed");
                self.subscriptions
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(port, handle);
                Ok(())
            }
            Err(error) => {
                self.context.release_port(port);
                Err(error)
            }
        }
    }

    fn unsubscribe(&self, port: u16) {
        let removed = self
            .subscriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&port);
        if removed.is_some() {
            self.context.unredirect(port);
            self.context.release_port(port);
            tracing::info!(port, "port unsubscribed");
        }
    }

    fn unsubscribe_all(&self) {
        let ports: Vec<u16> = self
            .subscriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .copied()
            .collect();
        for port in ports {
            self.unsubscribe(port);
        }
    }

    /// A new relay id and the signal its reader waits for (see [`Relays::starts`]).
    fn allocate(&self) -> (u64, tokio::sync::oneshot::Receiver<()>) {
        let mut relays = self
            .relays
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        relays.next_id += 1;
        let id = relays.next_id;
        let (start_tx, start_rx) = tokio::sync::oneshot::channel();
        relays.starts.insert(id, start_tx);
        (id, start_rx)
    }

    async fn tcp_connect(self: &Arc<Self>, remote: SocketAddr) -> RemoteResult<TcpConnected> {
        let domain = if remote.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        let fd = self
            .context
            .namespace
            .socket(domain, libc::SOCK_STREAM)
            .await
            .map_err(|e| RemoteError::from(&e))?;
        let socket = TcpSocket::from_std_stream(std::net::TcpStream::from(fd));
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(remote)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => return Err(RemoteError::from(&error)),
            Err(_) => {
                return Err(RemoteError::new(
                    ErrorCode::TimedOut,
                    format!("connecting to {remote} timed out"),
                ));
            }
        };
        let agent_local_addr = stream.local_addr().map_err(|e| RemoteError::from(&e))?;
        let (read_half, write_half) = stream.into_split();
        let connection_id = self.relay_outgoing(read_half, write_half);
        Ok(TcpConnected {
            connection_id,
            agent_local_addr,
        })
    }

    /// A unix stream connection to the socket file at `path` inside the target's root, relayed
    /// like a TCP connection.
    async fn unix_connect(self: &Arc<Self>, path: TargetPath) -> RemoteResult<UnixConnected> {
        let context = Arc::clone(&self.context);
        let (reply, fd) =
            tokio::task::spawn_blocking(move || crate::outgoing_fd::connect_unix(&context, &path))
                .await
                .map_err(|_| RemoteError::new(ErrorCode::Io, "the unix connect panicked"))??;
        let stream = tokio::net::UnixStream::from_std(std::os::unix::net::UnixStream::from(fd))
            .map_err(|e| RemoteError::from(&e))?;
        if reply == FdReply::Connecting {
            match tokio::time::timeout(CONNECT_TIMEOUT, stream.writable()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return Err(RemoteError::from(&error)),
                Err(_) => {
                    return Err(RemoteError::new(
                        ErrorCode::TimedOut,
                        "connecting to the unix socket timed out",
                    ));
                }
            }
            if let Some(error) = stream.take_error().map_err(|e| RemoteError::from(&e))? {
                return Err(RemoteError::from(&error));
            }
        }
        let (read_half, write_half) = stream.into_split();
        let connection_id = self.relay_outgoing(read_half, write_half);
        Ok(UnixConnected { connection_id })
    }

    /// Registers an outgoing connection and relays its bytes: the client's `OutgoingData` to
    /// `write_half`, what `read_half` reads to the client (once the open response is queued).
    fn relay_outgoing(
        self: &Arc<Self>,
        mut read_half: impl AsyncRead + Unpin + Send + 'static,
        mut write_half: impl AsyncWrite + Unpin + Send + 'static,
    ) -> ConnectionId {
        let (id, started) = self.allocate();
        let connection_id = ConnectionId(id);
        let (commands_tx, mut commands_rx) = mpsc::unbounded_channel();
        self.relays
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .connections
            .insert(id, commands_tx);

        // Client → target.
        tokio::spawn(async move {
            while let Some(command) = commands_rx.recv().await {
                match command {
                    ClientData::Data(data) => {
                        if write_half.write_all(&data).await.is_err() {
                            break;
                        }
                    }
                    ClientData::Shutdown => {
                        let _ = write_half.shutdown().await;
                    }
                }
            }
        });
        // Target → client, started once the response is queued so data never overtakes it.
        let session = Arc::clone(self);
        tokio::spawn(async move {
            if started.await.is_err() {
                return;
            }
            let mut buffer = vec![0u8; (MAX_IO_CHUNK as usize).min(256 * 1024)];
            let closing = loop {
                match read_half.read(&mut buffer).await {
                    Ok(0) => {
                        let _ = session
                            .outbox
                            .send(AgentToClient::OutgoingShutdown { connection_id })
                            .await;
                        break None;
                    }
                    Ok(read) => {
                        let data = ConnectionData {
                            connection_id,
                            data: Bytes::from(buffer[..read].to_vec()),
                        };
                        if session
                            .outbox
                            .send(AgentToClient::OutgoingData(data))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(error) => break Some(RemoteError::from(&error)),
                }
            };
            if let Some(error) = closing {
                session
                    .relays
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .connections
                    .remove(&id);
                let _ = session
                    .outbox
                    .send(AgentToClient::OutgoingClosed(ConnectionClosed {
                        connection_id,
                        error: Some(error),
                    }))
                    .await;
            }
        });
        connection_id
    }

    async fn udp_open(
        self: &Arc<Self>,
        request: mirrord_protocol::outgoing::UdpOpenRequest,
    ) -> RemoteResult<UdpOpened> {
        use mirrord_protocol::dns::AddressFamily;
        let ipv6 = match request.family {
            AddressFamily::Inet6 => true,
            AddressFamily::Inet => false,
            AddressFamily::Unspecified => request
                .connect
                .or(request.bind)
                .is_some_and(|a| a.is_ipv6()),
        };
        let domain = if ipv6 { libc::AF_INET6 } else { libc::AF_INET };
        let fd = self
            .context
            .namespace
            .socket(domain, libc::SOCK_DGRAM)
            .await
            .map_err(|e| RemoteError::from(&e))?;
        let raw_socket = socket2::Socket::from(fd);
        let bind = request.bind.unwrap_or_else(|| {
            if ipv6 {
                "[::]:0".parse().expect("valid")
            } else {
                "0.0.0.0:0".parse().expect("valid")
            }
        });
        raw_socket
            .bind(&bind.into())
            .map_err(|e| RemoteError::from(&e))?;
        if let Some(connect) = request.connect {
            raw_socket
                .connect(&connect.into())
                .map_err(|e| RemoteError::from(&e))?;
        }
        let std_socket = std::net::UdpSocket::from(raw_socket);
        let socket = Arc::new(UdpSocket::from_std(std_socket).map_err(|e| RemoteError::from(&e))?);
        let agent_local_addr = socket.local_addr().map_err(|e| RemoteError::from(&e))?;
        let (id, started) = self.allocate();
        let socket_id = UdpSocketId(id);
        self.relays
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .udp_sockets
            .insert(id, Arc::clone(&socket));
        let session = Arc::clone(self);
        let weak = Arc::downgrade(&socket);
        drop(socket);
        tokio::spawn(async move {
            if started.await.is_err() {
                return;
            }
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                let Some(socket) = weak.upgrade() else { break };
                // Wake up now and then to notice that the client closed the socket.
                let received =
                    tokio::time::timeout(Duration::from_secs(1), socket.recv_from(&mut buffer))
                        .await;
                drop(socket);
                match received {
                    Err(_) => continue,
                    Ok(Ok((length, from))) => {
                        let message = UdpReceived {
                            socket_id,
                            from,
                            data: Bytes::from(buffer[..length].to_vec()),
                        };
                        if session
                            .outbox
                            .send(AgentToClient::UdpReceived(message))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                    Ok(Err(error)) => {
                        let closed = UdpClosed {
                            socket_id,
                            error: Some(RemoteError::from(&error)),
                        };
                        let _ = session.outbox.send(AgentToClient::UdpClosed(closed)).await;
                        break;
                    }
                }
            }
        });
        Ok(UdpOpened {
            socket_id,
            agent_local_addr,
        })
    }
}
