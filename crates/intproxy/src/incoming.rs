//! Incoming connections: which layer listens for which target port, delivering each connection the
//! agent sends to that layer's real listening socket, and telling the layer who the real peer is.
//! It also keeps the listeners the session's processes opened locally, so that a loopback
//! `connect` from any of them to such a port stays local.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use mirrord_protocol::agent_channel::ClientToAgent;
use mirrord_protocol::incoming::{IncomingConnectionInfo, NewIncomingConnection};
use mirrord_protocol::outgoing::LocalListener;
use tokio::net::TcpSocket;
use tokio::sync::mpsc;

use crate::agent_link::{AgentLink, IncomingDelivery, RelayEvent};
use crate::pump;

/// Subscribed ports and delivered connections of the whole session.
#[derive(Debug, Default)]
pub(crate) struct IncomingRegistry {
    /// Target port → where the user process listens for it.
    listeners: Mutex<HashMap<u16, SocketAddr>>,
    /// Our end of each delivered connection → who really connected, to where.
    peers: Mutex<HashMap<SocketAddr, IncomingConnectionInfo>>,
    /// Local listeners: (layer connection, port asked for, where it listens).
    local: Mutex<Vec<(u64, u16, SocketAddr)>>,
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

    /// A layer (connection `owner`) opened or closed a local listener.
    pub(crate) fn local_listener(&self, owner: u64, listener: LocalListener) {
        let mut local = self.local.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = (owner, listener.port, listener.listening_on);
        local.retain(|known| *known != entry);
        if listener.open {
            local.push(entry);
        }
    }

    /// Forgets the local listeners of layer connection `owner` (it ended).
    pub(crate) fn forget_local(&self, owner: u64) {
        self.local
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(known, _, _)| *known != owner);
    }

    /// Where a process of the session listens for `port`: a local listener (the latest), else the
    /// listener subscribed for the target's `port`.
    pub(crate) fn find_local(&self, port: u16) -> Option<SocketAddr> {
        let local = self
            .local
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .rev()
            .find(|(_, known, _)| *known == port)
            .map(|(_, _, listening_on)| *listening_on);
        local.or_else(|| self.listener(port))
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
    events: mpsc::UnboundedReceiver<RelayEvent>,
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
    // Our end is bound (and registered) before connecting, so that the user process, which asks who the
    // real peer is as soon as `accept` returns, always finds it.
    let socket = match bound_socket(listening_on) {
        Ok(socket) => socket,
        Err(error) => {
            tracing::debug!(%listening_on, %error, "cannot make a socket to deliver an incoming connection");
            close(link).await;
            return;
        }
    };
    let our_end = socket.local_addr().ok();
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
    let forget_peer = |registry: &IncomingRegistry| {
        if let Some(our_end) = our_end {
            registry
                .peers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&our_end);
        }
    };
    let stream = match socket.connect(listening_on).await {
        Ok(stream) => stream,
        Err(error) => {
            tracing::debug!(%listening_on, %error, "cannot deliver an incoming connection to the user process");
            forget_peer(&registry);
            close(link).await;
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let halves = stream.into_split();
    pump::connection(&link, pump::Stream::Incoming, connection_id, halves, events).await;
    forget_peer(&registry);
    close(link).await;
}

/// A socket bound to an ephemeral port of the address the connection to `listening_on` will come from
/// (the listener's own address: loopback, or the local address it is bound to).
fn bound_socket(listening_on: SocketAddr) -> std::io::Result<TcpSocket> {
    let socket = if listening_on.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(listening_on.ip(), 0))?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(port: u16, at: &str, open: bool) -> LocalListener {
        LocalListener {
            port,
            listening_on: at.parse().unwrap(),
            open,
        }
    }

    #[test]
    fn local_listeners_are_found_until_closed_or_their_layer_leaves() {
        let registry = IncomingRegistry::default();
        assert_eq!(registry.find_local(8080), None);
        registry.local_listener(1, listener(8080, "127.0.0.1:8080", true));
        registry.local_listener(2, listener(9229, "127.0.0.1:9229", true));
        assert_eq!(
            registry.find_local(8080),
            Some("127.0.0.1:8080".parse().unwrap())
        );
        registry.local_listener(1, listener(8080, "127.0.0.1:8080", false));
        assert_eq!(registry.find_local(8080), None);
        registry.forget_local(2);
        assert_eq!(registry.find_local(9229), None);
        registry.listen(80, "127.0.0.1:39000".parse().unwrap());
        assert_eq!(
            registry.find_local(80),
            Some("127.0.0.1:39000".parse().unwrap()),
            "a listener subscribed for the target's port is the session's too"
        );
    }
}
