//! Relays between the user process's real sockets and the agent's: the layer connects the user's
//! socket to a loopback socket of ours, and we carry the bytes over the agent connection.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mirrord_protocol::agent_channel::ClientToAgent;
use mirrord_protocol::ids::{ConnectionId, UdpSocketId};
use mirrord_protocol::outgoing::{OutgoingConnected, TcpConnected, UdpOpened, UdpSend};
use mirrord_protocol::{Bytes, RemoteError, RemoteResult};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

use crate::agent_link::{AgentLink, RelayEvent};
use crate::pump;

/// How long the user process has to connect its socket to our relay.
pub(crate) const ACCEPT_TIMEOUT: Duration = Duration::from_secs(30);

/// The UDP relays a layer opened; closed when the layer disconnects.
#[derive(Debug, Clone, Default)]
pub(crate) struct RelayOwner {
    udp_sockets: Arc<Mutex<Vec<u64>>>,
}

impl RelayOwner {
    pub(crate) async fn close_all(&self, link: &AgentLink) {
        let sockets = std::mem::take(
            &mut *self
                .udp_sockets
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for socket_id in sockets {
            link.forget_udp(socket_id);
            link.send(ClientToAgent::UdpClose {
                socket_id: UdpSocketId(socket_id),
            })
            .await;
        }
    }
}

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

fn local_error(error: &std::io::Error) -> RemoteError {
    RemoteError::from(error)
}

/// Opens a loopback listener for one agent connection and relays once the user connects.
pub(crate) async fn start_tcp(
    link: Arc<AgentLink>,
    connected: TcpConnected,
    events: mpsc::UnboundedReceiver<RelayEvent>,
) -> RemoteResult<OutgoingConnected> {
    let connection_id = connected.connection_id;
    let listener = match TcpListener::bind(loopback()).await {
        Ok(listener) => listener,
        Err(error) => {
            link.send(ClientToAgent::OutgoingClose { connection_id })
                .await;
            return Err(local_error(&error));
        }
    };
    let intproxy_addr = listener.local_addr().map_err(|e| local_error(&e))?;
    tokio::spawn(async move {
        let stream = match tokio::time::timeout(ACCEPT_TIMEOUT, listener.accept()).await {
            Ok(Ok((stream, _))) => stream,
            _ => {
                tracing::debug!(
                    ?connection_id,
                    "the user process never connected to its relay"
                );
                close_outgoing(&link, connection_id).await;
                return;
            }
        };
        drop(listener);
        let _ = stream.set_nodelay(true);
        let halves = stream.into_split();
        pump::connection(&link, pump::Stream::Outgoing, connection_id, halves, events).await;
        close_outgoing(&link, connection_id).await;
    });
    Ok(OutgoingConnected {
        intproxy_addr,
        agent_local_addr: connected.agent_local_addr,
    })
}

/// Ends an outgoing connection (TCP or unix stream) on our side and tells the agent to close it.
pub(crate) async fn close_outgoing(link: &AgentLink, connection_id: ConnectionId) {
    link.forget_tcp(connection_id.0);
    link.send(ClientToAgent::OutgoingClose { connection_id })
        .await;
}

/// Opens a loopback UDP socket standing for one agent datagram socket (connected to one remote
/// address): datagrams the user sends to it go out from the target, answers come back from it.
pub(crate) async fn start_udp(
    link: Arc<AgentLink>,
    owner: &RelayOwner,
    opened: UdpOpened,
    mut events: mpsc::UnboundedReceiver<RelayEvent>,
) -> RemoteResult<OutgoingConnected> {
    let socket_id = opened.socket_id;
    let socket = UdpSocket::bind(loopback())
        .await
        .map_err(|e| local_error(&e))?;
    let intproxy_addr = socket.local_addr().map_err(|e| local_error(&e))?;
    owner
        .udp_sockets
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(socket_id.0);
    tokio::spawn(async move {
        let mut user: Option<SocketAddr> = None;
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            tokio::select! {
                received = socket.recv_from(&mut buffer) => match received {
                    Ok((length, from)) => {
                        user = Some(from);
                        let send = UdpSend { socket_id, to: None, data: Bytes::from(buffer[..length].to_vec()) };
                        link.send(ClientToAgent::UdpSend(send)).await;
                    }
                    Err(error) => {
                        tracing::debug!(%error, "udp relay receive failed");
                    }
                },
                event = events.recv() => match event {
                    Some(RelayEvent::Datagram(data)) => {
                        if let Some(user) = user {
                            let _ = socket.send_to(&data, user).await;
                        }
                    }
                    Some(RelayEvent::Closed(error)) => {
                        tracing::debug!(?socket_id, ?error, "the agent closed the datagram socket");
                        break;
                    }
                    None => break,
                    Some(RelayEvent::Data(_) | RelayEvent::Shutdown) => {}
                },
            }
        }
    });
    Ok(OutgoingConnected {
        intproxy_addr,
        agent_local_addr: opened.agent_local_addr,
    })
}
