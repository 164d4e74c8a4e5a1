//! Incoming connections: which layer listens for which target port, delivering each connection the
//! agent sends to that layer's real listening socket, and telling the layer who the real peer is.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use mirrord_protocol::Bytes;
use mirrord_protocol::agent_channel::ClientToAgent;
use mirrord_protocol::incoming::{IncomingConnectionInfo, NewIncomingConnection};
use mirrord_protocol::outgoing::ConnectionData;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::agent_link::{AgentLink, IncomingDelivery, RelayEvent};

/// Subscribed ports and delivered connections of the whole session.
#[derive(Debug, Default)]
pub(crate) struct IncomingRegistry {
    /// Target port → where the user process listens for it.
    listeners: Mutex<HashMap<u16, SocketAddr>>,
    /// Our end of each delivered connection → who really connected, to where.
    peers: Mutex<HashMap<SocketAddr, IncomingConnectionInfo>>,
}

impl IncomingRegistry {
    pub(crate) fn listen(&self, port: u16, listening_on: SocketAddr) {
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(port, listening_on);
    }

    pub(crate) fn unlisten(&self, port: u16) {
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&port);
    }

    /// The real peer of the connection whose intproxy end is `intproxy_addr`.
    pub(crate) fn peer(&self, intproxy_addr: SocketAddr) -> Option<IncomingConnectionInfo> {
        self.peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&intproxy_addr)
            .cloned()
    }

    fn listener(&self, port: u16) -> Option<SocketAddr> {
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&port)
            .copied()
    }
}

/// Delivers every incoming connection to the layer listening for its port.
pub(crate) async fn dispatch(
    link: Arc<AgentLink>,
    registry: Arc<IncomingRegistry>,
    mut deliveries: mpsc::UnboundedReceiver<IncomingDelivery>,
) {
    while let Some((new, events)) = deliveries.recv().await {
        let (link, registry) = (Arc::clone(&link), Arc::clone(&registry));
        tokio::spawn(deliver(link, registry, new, events));
    }
}

async fn deliver(
    link: Arc<AgentLink>,
    registry: Arc<IncomingRegistry>,
    new: NewIncomingConnection,
    mut events: mpsc::UnboundedReceiver<RelayEvent>,
) {
    let connection_id = new.connection_id;
    let close = |link: Arc<AgentLink>| async move {
        link.forget_incoming(connection_id.0);
        link.send(ClientToAgent::IncomingClose { connection_id })
            .await;
    };
    let Some(listening_on) = registry.listener(new.port) else {
        tracing::debug!(
            port = new.port,
            "a connection arrived for a port nobody listens on any more"
        );
        close(link).await;
        return;
    };
    let stream = match TcpStream::connect(listening_on).await {
        Ok(stream) => stream,
        Err(error) => {
            tracing::debug!(%listening_on, %error, "cannot deliver an incoming connection to the user process");
            close(link).await;
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let our_end = stream.local_addr().ok();
    if let Some(our_end) = our_end {
        let info = IncomingConnectionInfo {
            remote_peer: new.remote_peer,
            destination: new.destination,
        };
        registry
            .peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(our_end, info);
    }
    let (mut read_half, mut write_half) = stream.into_split();
    let mut buffer = vec![0u8; 128 * 1024];
    let (mut user_done, mut agent_done) = (false, false);
    while !(user_done && agent_done) {
        tokio::select! {
            read = read_half.read(&mut buffer), if !user_done => match read {
                Ok(0) | Err(_) => {
                    user_done = true;
                    link.send(ClientToAgent::IncomingShutdown { connection_id }).await;
                }
                Ok(length) => {
                    let data = ConnectionData { connection_id, data: Bytes::from(buffer[..length].to_vec()) };
                    link.send(ClientToAgent::IncomingData(data)).await;
                }
            },
            event = events.recv(), if !agent_done => match event {
                Some(RelayEvent::Data(data)) => {
                    if write_half.write_all(&data).await.is_err() {
                        break;
                    }
                }
                Some(RelayEvent::Shutdown) => {
                    agent_done = true;
                    let _ = write_half.shutdown().await;
                }
                Some(RelayEvent::Closed(_)) | None => break,
                Some(RelayEvent::Datagram(_)) => {}
            },
        }
    }
    if let Some(our_end) = our_end {
        registry
            .peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&our_end);
    }
    close(link).await;
}
