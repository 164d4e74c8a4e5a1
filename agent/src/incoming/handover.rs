//! Handing stolen connections over as descriptors (`SubscriptionMode::StealHandover`): for a
//! client on this machine, the agent announces a stolen connection as usual but reads nothing from
//! it; the process that accepts the intproxy's delivery of it then takes the connection's socket
//! itself on the descriptor socket (`FdRequest::TakeIncoming`, served by [`crate::fd_server`]), so
//! its requests and responses are plain system calls on the remote peer's own connection, with no
//! relay on the way.
//!
//! Each connection is parked here until one of these comes first:
//! - the take: the socket leaves with the descriptor, and the client is told the connection is
//!   closed (the intproxy then drops its delivery);
//! - data or a shutdown from the client for it (a process that did not take it wrote to the
//!   delivered connection), or [`WAIT`] without a take (a process that reads first, such as one
//!   whose `accept` the supervisor did not serve): the connection is relayed as under `Steal`;
//! - the client's close: the connection is closed.
//!
//! Whoever removes the entry from the map owns the socket, so a take racing a fall-back is
//! decided by one lock.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mirrord_protocol::agent_channel::AgentToClient;
use mirrord_protocol::incoming::NewIncomingConnection;
use mirrord_protocol::outgoing::ConnectionClosed;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::{ClientData, IncomingSink, relay_to_client};

/// How long a parked connection waits to be taken before it is relayed instead.
const WAIT: Duration = Duration::from_secs(3);

/// A connection's name: who connected, and where to.
type Key = (SocketAddr, SocketAddr);

/// The connections parked for a handover, shared by the sessions and the descriptor socket.
#[derive(Debug, Default)]
pub(crate) struct Handover {
    parked: Mutex<HashMap<Key, Parked>>,
}

#[derive(Debug)]
struct Parked {
    stream: std::net::TcpStream,
    /// Tells the parked task its connection was taken.
    taken: oneshot::Sender<()>,
}

impl Handover {
    fn parked(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Parked>> {
        self.parked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the socket of the connection from `remote_peer` to `destination`, if one is parked.
    pub(crate) fn take(
        &self,
        remote_peer: SocketAddr,
        destination: SocketAddr,
    ) -> Option<std::net::TcpStream> {
        let parked = self.parked().remove(&(remote_peer, destination))?;
        let _ = parked.taken.send(());
        Some(parked.stream)
    }

    /// Takes a parked connection back for the agent itself; `None` when it was taken meanwhile.
    fn unpark(&self, key: Key) -> Option<std::net::TcpStream> {
        self.parked().remove(&key).map(|parked| parked.stream)
    }
}

/// Steal with handover: announces `stream` to the client, parks it, and relays it only if it is
/// not taken (see the module's docs).
pub(crate) async fn steal<S: IncomingSink>(
    stream: TcpStream,
    new: NewIncomingConnection,
    handover: Arc<Handover>,
    sink: Arc<S>,
) {
    let Ok(std_stream) = stream.into_std() else {
        return;
    };
    let (connection_id, mut from_client) = sink.register();
    let key = (new.remote_peer, new.destination);
    let (taken_tx, mut taken_rx) = oneshot::channel();
    // Parked before the client hears of it, so a take can never come first.
    handover.parked().insert(
        key,
        Parked {
            stream: std_stream,
            taken: taken_tx,
        },
    );
    let new = NewIncomingConnection {
        connection_id,
        ..new
    };
    if !sink.send(AgentToClient::IncomingConnection(new)).await {
        handover.unpark(key);
        sink.forget(connection_id);
        return;
    }
    let next = tokio::select! {
        _ = &mut taken_rx => Next::Taken,
        first = from_client.recv() => first.map_or(Next::Closed, |first| Next::Relay(Some(first))),
        () = tokio::time::sleep(WAIT) => Next::Relay(None),
    };
    let (stream, first) = match next {
        Next::Taken => return handed_over(connection_id, key.0, &*sink).await,
        Next::Closed => {
            handover.unpark(key);
            sink.forget(connection_id);
            return;
        }
        Next::Relay(first) => match handover.unpark(key) {
            Some(stream) => (stream, first),
            // Taken meanwhile.
            None => return handed_over(connection_id, key.0, &*sink).await,
        },
    };
    tracing::debug!(remote_peer = %key.0, "a stolen connection was not taken; relaying it");
    let Ok(stream) = TcpStream::from_std(stream) else {
        sink.forget(connection_id);
        return;
    };
    relay_to_client(stream, connection_id, first, from_client, &*sink).await;
    sink.forget(connection_id);
}

/// What ended a connection's wait in the parking.
enum Next {
    /// A process took its socket.
    Taken,
    /// The client closed it.
    Closed,
    /// Relay it, starting with what the client sent, if anything.
    Relay(Option<ClientData>),
}

/// The connection left with its descriptor: the client's delivery of it ends.
async fn handed_over<S: IncomingSink>(
    connection_id: mirrord_protocol::ids::ConnectionId,
    remote_peer: SocketAddr,
    sink: &S,
) {
    tracing::debug!(%remote_peer, "a stolen connection was handed over");
    sink.send(AgentToClient::IncomingClosed(ConnectionClosed {
        connection_id,
        error: None,
    }))
    .await;
    sink.forget(connection_id);
}
