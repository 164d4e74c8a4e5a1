//! The session's one connection to the agent: request/response matching by id, and routing of
//! relayed traffic to the relay that owns each connection or datagram socket.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mirrord_protocol::agent_channel::{AgentRequest, AgentResponse, AgentToClient, ClientToAgent};
use mirrord_protocol::frame::{FrameDecoder, encode};
use mirrord_protocol::handshake::{ClientKind, Hello, HelloReply};
use mirrord_protocol::ids::RequestId;
use mirrord_protocol::incoming::NewIncomingConnection;
use mirrord_protocol::token::SessionToken;
use mirrord_protocol::{RemoteError, RemoteResult};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};

use crate::link_writer::write_queued;

/// Something that happened to a relayed connection or datagram socket on the agent's side.
#[derive(Debug)]
pub(crate) enum RelayEvent {
    /// Bytes from the remote peer.
    Data(Vec<u8>),
    /// The remote peer will send no more.
    Shutdown,
    /// The agent closed it.
    Closed(Option<RemoteError>),
    /// A datagram from the remote peer the socket is connected to.
    Datagram(Vec<u8>),
}

/// The answer to a request, with the event stream of the relay it opened, if it opened one.
pub(crate) struct Completion {
    pub(crate) result: RemoteResult<AgentResponse>,
    pub(crate) events: Option<mpsc::UnboundedReceiver<RelayEvent>>,
}

#[derive(Default)]
struct LinkState {
    next_id: u64,
    pending: HashMap<u64, oneshot::Sender<Completion>>,
    relays: HashMap<(RelayKind, u64), mpsc::UnboundedSender<RelayEvent>>,
    lost: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum RelayKind {
    Tcp,
    Udp,
    Incoming,
}

/// A connection the agent delivers for a subscribed port, with its event stream.
pub(crate) type IncomingDelivery = (NewIncomingConnection, mpsc::UnboundedReceiver<RelayEvent>);

/// The agent connection.
pub struct AgentLink {
    outbox: mpsc::Sender<ClientToAgent>,
    state: Mutex<LinkState>,
    lost_tx: watch::Sender<Option<String>>,
    incoming_tx: mpsc::UnboundedSender<IncomingDelivery>,
    incoming_rx: Mutex<Option<mpsc::UnboundedReceiver<IncomingDelivery>>>,
}

impl std::fmt::Debug for AgentLink {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("AgentLink").finish_non_exhaustive()
    }
}

/// Which step of opening the link failed (mapped to a [`ConnectError`] by the transport).
enum LinkFailure {
    Io(std::io::Error),
    Handshake,
}

/// Why the agent connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// TCP failed.
    #[error("cannot connect to the agent at {address}")]
    Connect {
        /// The agent's address.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The agent closed the connection or sent something else than a hello reply.
    #[error("the agent at {address} did not answer the handshake")]
    Handshake {
        /// The agent's address.
        address: SocketAddr,
    },
    /// Reading or writing the stream to the agent failed.
    #[error("cannot talk to the agent through {peer}")]
    Stream {
        /// What the stream leads through (e.g. `port-forward to default/agent:4000`).
        peer: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The stream closed or carried something else than a hello reply.
    #[error("the agent did not answer the handshake through {peer}")]
    StreamHandshake {
        /// What the stream leads through.
        peer: String,
    },
    /// The agent refused us.
    #[error("the agent refused the session: {reason}")]
    Refused {
        /// The agent's reason.
        reason: String,
    },
}

impl AgentLink {
    /// Connects and shakes hands; then reads and writes in background tasks.
    pub async fn connect(
        address: SocketAddr,
        token: SessionToken,
    ) -> Result<Arc<AgentLink>, ConnectError> {
        let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(address))
            .await
            .map_err(|_| ConnectError::Connect {
                address,
                source: std::io::ErrorKind::TimedOut.into(),
            })?
            .map_err(|source| ConnectError::Connect { address, source })?;
        let _ = stream.set_nodelay(true);
        let (reader, writer) = stream.into_split();
        Self::run(reader, writer, token, |failure| match failure {
            LinkFailure::Io(source) => ConnectError::Connect { address, source },
            LinkFailure::Handshake => ConnectError::Handshake { address },
        })
        .await
    }

    /// Shakes hands over an already open byte stream to the agent (a Kubernetes port-forward,
    /// for one) named `peer` in errors; then works exactly as over TCP.
    pub async fn connect_stream<S>(
        stream: S,
        token: SessionToken,
        peer: &str,
    ) -> Result<Arc<AgentLink>, ConnectError>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (reader, writer) = tokio::io::split(stream);
        Self::run(reader, writer, token, |failure| match failure {
            LinkFailure::Io(source) => ConnectError::Stream {
                peer: peer.to_owned(),
                source,
            },
            LinkFailure::Handshake => ConnectError::StreamHandshake {
                peer: peer.to_owned(),
            },
        })
        .await
    }

    async fn run<R, W>(
        mut reader: R,
        mut writer: W,
        token: SessionToken,
        error: impl Fn(LinkFailure) -> ConnectError,
    ) -> Result<Arc<AgentLink>, ConnectError>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let hello = Hello::new(token, ClientKind::IntProxy);
        let frame = encode(&hello).map_err(|_| error(LinkFailure::Handshake))?;
        writer
            .write_all(&frame)
            .await
            .map_err(|source| error(LinkFailure::Io(source)))?;
        let mut decoder = FrameDecoder::new();
        let mut buffer = vec![0u8; 256 * 1024];
        let reply: HelloReply = loop {
            match decoder.pop::<HelloReply>() {
                Ok(Some(reply)) => break reply,
                Ok(None) => {}
                Err(_) => return Err(error(LinkFailure::Handshake)),
            }
            let read = tokio::time::timeout(Duration::from_secs(10), reader.read(&mut buffer))
                .await
                .map_err(|_| error(LinkFailure::Handshake))?
                .map_err(|source| error(LinkFailure::Io(source)))?;
            if read == 0 {
                return Err(error(LinkFailure::Handshake));
            }
            decoder.push(&buffer[..read]);
        };
        if let HelloReply::Refused { reason } = reply {
            return Err(ConnectError::Refused { reason });
        }

        let (outbox, mut outbox_rx) = mpsc::channel::<ClientToAgent>(256);
        let (lost_tx, _) = watch::channel(None);
        let (incoming_tx, incoming_rx) = mpsc::unbounded_channel();
        let link = Arc::new(AgentLink {
            outbox,
            state: Mutex::new(LinkState::default()),
            lost_tx,
            incoming_tx,
            incoming_rx: Mutex::new(Some(incoming_rx)),
        });
        let writer_link = Arc::clone(&link);
        tokio::spawn(async move {
            if write_queued(&mut outbox_rx, &mut writer, "agent")
                .await
                .is_err()
            {
                writer_link.mark_lost("writing to the agent failed");
            }
        });
        let reader_link = Arc::clone(&link);
        tokio::spawn(async move {
            loop {
                match decoder.pop::<AgentToClient>() {
                    Ok(Some(message)) => {
                        reader_link.route(message);
                        continue;
                    }
                    Ok(None) => {}
                    Err(error) if error.is_fatal() => {
                        reader_link
                            .mark_lost(&format!("the agent sent an undecodable stream: {error}"));
                        return;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "skipped an undecodable frame from the agent");
                        continue;
                    }
                }
                match reader.read(&mut buffer).await {
                    Ok(0) => break,
                    Ok(read) => decoder.push(&buffer[..read]),
                    Err(error) => {
                        reader_link.mark_lost(&format!("reading from the agent failed: {error}"));
                        return;
                    }
                }
            }
            reader_link.mark_lost("the agent closed the connection");
        });
        Ok(link)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LinkState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn route(&self, message: AgentToClient) {
        let mut state = self.state();
        let (key, event) = match message {
            AgentToClient::Response { id, result } => {
                let Some(waiter) = state.pending.remove(&id.0) else {
                    return;
                };
                let opened = match &result {
                    Ok(AgentResponse::TcpConnected(connected)) => {
                        Some((RelayKind::Tcp, connected.connection_id.0))
                    }
                    // Unix stream connections share the outgoing connections' ids and messages.
                    Ok(AgentResponse::UnixConnected(connected)) => {
                        Some((RelayKind::Tcp, connected.connection_id.0))
                    }
                    Ok(AgentResponse::UdpOpened(opened)) => {
                        Some((RelayKind::Udp, opened.socket_id.0))
                    }
                    _ => None,
                };
                // Register the relay before anything else is routed, so no data can arrive for it
                // unannounced.
                let events = opened.map(|key| {
                    let (events_tx, events_rx) = mpsc::unbounded_channel();
                    state.relays.insert(key, events_tx);
                    events_rx
                });
                let _ = waiter.send(Completion { result, events });
                return;
            }
            AgentToClient::OutgoingData(data) => (
                (RelayKind::Tcp, data.connection_id.0),
                RelayEvent::Data(data.data.into_vec()),
            ),
            AgentToClient::OutgoingShutdown { connection_id } => {
                ((RelayKind::Tcp, connection_id.0), RelayEvent::Shutdown)
            }
            AgentToClient::OutgoingClosed(closed) => {
                let key = (RelayKind::Tcp, closed.connection_id.0);
                if let Some(relay) = state.relays.remove(&key) {
                    let _ = relay.send(RelayEvent::Closed(closed.error));
                }
                return;
            }
            AgentToClient::UdpReceived(received) => (
                (RelayKind::Udp, received.socket_id.0),
                RelayEvent::Datagram(received.data.into_vec()),
            ),
            AgentToClient::UdpClosed(closed) => {
                if let Some(relay) = state.relays.remove(&(RelayKind::Udp, closed.socket_id.0)) {
                    let _ = relay.send(RelayEvent::Closed(closed.error));
                }
                return;
            }
            AgentToClient::IncomingConnection(new) => {
                let (events_tx, events_rx) = mpsc::unbounded_channel();
                state
                    .relays
                    .insert((RelayKind::Incoming, new.connection_id.0), events_tx);
                let _ = self.incoming_tx.send((new, events_rx));
                return;
            }
            AgentToClient::IncomingData(data) => (
                (RelayKind::Incoming, data.connection_id.0),
                RelayEvent::Data(data.data.into_vec()),
            ),
            AgentToClient::IncomingShutdown { connection_id } => {
                ((RelayKind::Incoming, connection_id.0), RelayEvent::Shutdown)
            }
            AgentToClient::IncomingClosed(closed) => {
                if let Some(relay) = state
                    .relays
                    .remove(&(RelayKind::Incoming, closed.connection_id.0))
                {
                    let _ = relay.send(RelayEvent::Closed(closed.error));
                }
                return;
            }
            AgentToClient::Pong { .. } => return,
        };
        if let Some(relay) = state.relays.get(&key) {
            let _ = relay.send(event);
        }
    }

    /// Fails everything pending and every relay; later requests fail at once.
    fn mark_lost(&self, reason: &str) {
        let mut state = self.state();
        if state.lost.is_some() {
            return;
        }
        tracing::warn!(%reason, "agent connection lost");
        state.lost = Some(reason.to_owned());
        for (_, waiter) in state.pending.drain() {
            let _ = waiter.send(Completion {
                result: Err(RemoteError::agent_lost(reason)),
                events: None,
            });
        }
        for (_, relay) in state.relays.drain() {
            let _ = relay.send(RelayEvent::Closed(Some(RemoteError::agent_lost(reason))));
        }
        drop(state);
        let _ = self.lost_tx.send(Some(reason.to_owned()));
    }

    /// Sends a request and waits for its answer (and the relay it opened, if any).
    pub(crate) async fn request(&self, request: AgentRequest) -> Completion {
        let (waiter_tx, waiter_rx) = oneshot::channel();
        let id = {
            let mut state = self.state();
            if let Some(reason) = &state.lost {
                return Completion {
                    result: Err(RemoteError::agent_lost(reason.clone())),
                    events: None,
                };
            }
            state.next_id += 1;
            let id = state.next_id;
            state.pending.insert(id, waiter_tx);
            id
        };
        if self
            .outbox
            .send(ClientToAgent::Request {
                id: RequestId(id),
                request,
            })
            .await
            .is_err()
        {
            self.mark_lost("the agent writer stopped");
        }
        waiter_rx.await.unwrap_or_else(|_| Completion {
            result: Err(RemoteError::agent_lost("the agent connection is gone")),
            events: None,
        })
    }

    /// Sends a message that has no answer (relayed data, closes).
    pub(crate) async fn send(&self, message: ClientToAgent) {
        if self.outbox.send(message).await.is_err() {
            self.mark_lost("the agent writer stopped");
        }
    }

    /// Forgets a relay (after it closed on our side).
    pub(crate) fn forget_tcp(&self, connection_id: u64) {
        self.state().relays.remove(&(RelayKind::Tcp, connection_id));
    }

    /// Forgets an incoming connection.
    pub(crate) fn forget_incoming(&self, connection_id: u64) {
        self.state()
            .relays
            .remove(&(RelayKind::Incoming, connection_id));
    }

    /// The connections the agent delivers for subscribed ports (taken once, by the dispatcher).
    pub(crate) fn take_incoming(&self) -> Option<mpsc::UnboundedReceiver<IncomingDelivery>> {
        self.incoming_rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Forgets a UDP relay.
    pub(crate) fn forget_udp(&self, socket_id: u64) {
        self.state().relays.remove(&(RelayKind::Udp, socket_id));
    }

    /// Changes to `Some(reason)` when the agent connection is lost.
    pub(crate) fn lost(&self) -> watch::Receiver<Option<String>> {
        self.lost_tx.subscribe()
    }

    /// Sends the agent a heartbeat (`Ping`) every `every` while the link lives. Over a
    /// port-forward nothing may close the agent's end when this process is killed; an agent that
    /// has had heartbeats takes their silence as the end of the session.
    pub fn start_heartbeat(self: &Arc<Self>, every: Duration) {
        let link = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            for nonce in 0u64.. {
                tick.tick().await;
                let Some(link) = link.upgrade() else { return };
                if link.lost_tx.borrow().is_some() {
                    return;
                }
                link.send(ClientToAgent::Ping { nonce }).await;
            }
        });
    }
}
