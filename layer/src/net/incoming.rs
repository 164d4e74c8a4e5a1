//! Incoming traffic: the safe logic behind `bind`, `listen` and `accept`.
//!
//! The user's server keeps listening on a real local socket. `bind` decides whether the port belongs to
//! the target (after `port_mapping`, `ports`, `ignore_ports`, `ignore_localhost`), binds the socket to the
//! port `listen_ports` names, else to the requested one, else (taken, or privileged) to any free port;
//! `listen` subscribes the target's port through the intproxy, naming where the socket really listens.
//! The intproxy connects there for each incoming connection; `accept` asks it who the real peer is, so
//! that `accept`, `getpeername` and `getsockname` report the remote peer and the target's address.
//!
//! What the config decides (which ports, which subscription) is in `incoming_policy.rs`, shared with
//! the supervisor. A listener is unsubscribed when the process that subscribed it closes its last descriptor of it (a
//! forked child closing its copy changes nothing), and by the intproxy when that process's connection
//! ends.

use std::net::SocketAddr;

use mirrord_protocol::{
    ErrorCode, LayerRequest, LayerResponse,
    incoming::{IncomingConnectionInfoRequest, LayerPortSubscription, LayerPortUnsubscription},
};

pub(crate) use super::incoming_policy::{IncomingPolicy, reachable};
use super::{
    SOCKETS, filter::canonical, mark_managed, parse_sockaddr, protocol_of, sockaddr_bytes,
    socket_info,
};
use crate::{
    connection::{request, unexpected},
    detour::{Outcome, errno, lock},
    fd_table::{FDS, FdEntry, SocketInfo},
    net::{filter::Protocol, udp::Connected},
    process, setup,
};

/// A listener whose port belongs to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Listener {
    /// What the user bound (reported by `getsockname`).
    pub(crate) requested: SocketAddr,
    /// The target's port.
    pub(crate) remote_port: u16,
    /// Where the socket really listens, once subscribed.
    pub(crate) listening_on: Option<SocketAddr>,
    /// The process that subscribed it.
    pub(crate) subscribed_by: Option<u32>,
}

/// `bind`: a listener for a port of the target binds where `listen_ports` says, else where asked, else
/// to any free port of the same address. `bind` runs the original with another address.
pub(crate) fn bind(fd: i32, address: &[u8], bind: impl Fn(&[u8]) -> i32) -> Outcome<i32> {
    let Some(layer) = setup::layer() else {
        return Outcome::Bypass("inactive");
    };
    let Some(requested) = parse_sockaddr(address) else {
        return Outcome::Bypass("not an inet address");
    };
    let Some(info) = socket_info(fd) else {
        return Outcome::Bypass("not an inet socket");
    };
    if protocol_of(info) != Some(Protocol::Tcp) || !layer.incoming.handles(requested) {
        return Outcome::Bypass("not a listener of the target");
    }
    if process::in_borrowed_memory() {
        return Outcome::Bypass("vfork child");
    }
    let attempt = |port: u16| -> Result<(), i32> {
        let Some(bytes) = sockaddr_bytes(SocketAddr::new(requested.ip(), port), info.domain.into())
        else {
            return Err(libc::EAFNOSUPPORT);
        };
        if bind(&bytes) == 0 {
            Ok(())
        } else {
            Err(errno())
        }
    };
    let result = match layer.incoming.listen_port(requested.port()) {
        Some(port) => attempt(port),
        None => attempt(requested.port()).or_else(|error| match error {
            libc::EADDRINUSE | libc::EACCES => attempt(0),
            other => Err(other),
        }),
    };
    if let Err(error) = result {
        return Outcome::Fail(error);
    }
    let listener = Listener {
        requested,
        remote_port: layer.incoming.remote_port(requested.port()),
        listening_on: None,
        subscribed_by: None,
    };
    lock(&SOCKETS).entry(fd).or_default().listener = Some(listener);
    mark_managed(fd, info);
    tracing::debug!(%requested, remote_port = listener.remote_port, "bound a listener of the target");
    Outcome::Handled(0)
}

/// After a successful `listen` on `fd` (whose real address is `bound`): subscribe the target's port.
pub(crate) fn listening(fd: i32, bound: &[u8]) -> Outcome<i32> {
    let Some(layer) = setup::layer() else {
        return Outcome::Bypass("inactive");
    };
    let Some(listener) = lock(&SOCKETS).get(&fd).and_then(|state| state.listener) else {
        return Outcome::Bypass("not a listener of the target");
    };
    if listener.subscribed_by.is_some() {
        return Outcome::Handled(0);
    }
    let Some(bound) = parse_sockaddr(bound) else {
        return Outcome::Fail(libc::EINVAL);
    };
    let Some(subscription) = layer.incoming.subscription(listener.remote_port) else {
        return Outcome::Handled(0);
    };
    let listening_on = reachable(bound);
    let port = subscription.port;
    match request(LayerRequest::PortSubscribe(LayerPortSubscription {
        subscription,
        listening_on,
    })) {
        Ok(LayerResponse::PortSubscribed) => {}
        Ok(LayerResponse::PortSubscribedWithWarning(warning)) => {
            tracing::warn!(port, %warning, "subscribed with a warning");
            tell_user(&format!("mirrord: warning: {warning}\n"));
        }
        Ok(other) => return Outcome::Fail(unexpected(&other).errno()),
        Err(error) => {
            tracing::warn!(%error, port, "the target's port could not be subscribed");
            tell_user(&format!(
                "mirrord: the server cannot receive the target's traffic to port {port}: {error}\n"
            ));
            return Outcome::Fail(error.errno());
        }
    }
    if let Some(state) = lock(&SOCKETS).get_mut(&fd)
        && let Some(listener) = state.listener.as_mut()
    {
        listener.listening_on = Some(listening_on);
        listener.subscribed_by = Some(process::pid());
    }
    tracing::info!(port, %listening_on, "receiving the target's traffic");
    Outcome::Handled(0)
}

/// What the layer ever writes to the user's stderr: why `listen` failed, since the program itself
/// only gets an errno (`EADDRINUSE`) and would report it as a local problem, and the agent's
/// warning about a subscribed port (nothing in the target listens on it).
fn tell_user(message: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(message.as_bytes());
}

/// Whether `fd` is a listener of the target (to decide whether `accept` needs the slow path).
pub(crate) fn is_listener(fd: i32) -> bool {
    lock(&SOCKETS)
        .get(&fd)
        .is_some_and(|state| state.listener.is_some())
}

/// `accept` on listener `fd` returned `new_fd` with peer `peer`: the address to report to the caller.
/// A connection the intproxy delivered reports the remote peer, and its socket becomes managed (so that
/// `getpeername`/`getsockname` report the remote peer and the target's address).
pub(crate) fn accepted(fd: i32, new_fd: i32, peer: &[u8]) -> Outcome<Vec<u8>> {
    let Some(FdEntry::Socket(info)) = FDS.get(fd) else {
        return Outcome::Bypass("not a managed socket");
    };
    let accepted_info = SocketInfo {
        managed: false,
        ..info
    };
    if let Ok(Some(stale)) = FDS.set(new_fd, FdEntry::Socket(accepted_info)) {
        crate::files::forget_entry(new_fd, stale);
    }
    let Some(listener) = lock(&SOCKETS).get(&fd).and_then(|state| state.listener) else {
        return Outcome::Bypass("not a listener of the target");
    };
    let (Some(peer_address), Some(listening_on)) = (parse_sockaddr(peer), listener.listening_on)
    else {
        return Outcome::Bypass("not a delivered connection");
    };
    let peer_address = canonical(peer_address);
    if !peer_address.ip().is_loopback() && peer_address.ip() != listening_on.ip() {
        return Outcome::Bypass("a local peer");
    }
    let info = match request(LayerRequest::IncomingConnectionInfo(
        IncomingConnectionInfoRequest {
            intproxy_addr: peer_address,
        },
    )) {
        Ok(LayerResponse::IncomingConnectionInfo(info)) => info,
        Ok(_) => return Outcome::Bypass("unexpected answer"),
        Err(error) if error.code == ErrorCode::NotFound => {
            return Outcome::Bypass("a local peer");
        }
        Err(error) => {
            tracing::debug!(%error, "the real peer of an accepted connection is unknown");
            return Outcome::Bypass("the intproxy did not answer");
        }
    };
    lock(&SOCKETS).entry(new_fd).or_default().connected = Some(Connected {
        remote: info.remote_peer,
        agent_local: info.destination,
        relay: peer_address,
    });
    mark_managed(new_fd, accepted_info);
    match sockaddr_bytes(info.remote_peer, accepted_info.domain.into()) {
        Some(bytes) => Outcome::Handled(bytes),
        None => Outcome::Bypass("the remote peer does not fit the socket's family"),
    }
}

/// The address `getsockname` reports for a listener of the target: what the user bound.
pub(crate) fn listener_name(fd: i32) -> Option<SocketAddr> {
    lock(&SOCKETS)
        .get(&fd)
        .and_then(|state| state.listener)
        .map(|listener| listener.requested)
}

/// `fd`'s state was dropped with `listener` in it: unsubscribe when this process subscribed it and no
/// other descriptor of this process still has it.
pub(crate) fn closed(listener: Listener) {
    let (Some(owner), Some(listening_on)) = (listener.subscribed_by, listener.listening_on) else {
        return;
    };
    if owner != process::pid() {
        return;
    }
    let shared = lock(&SOCKETS).values().any(|state| {
        state
            .listener
            .is_some_and(|other| other.listening_on == Some(listening_on))
    });
    if shared {
        return;
    }
    let port = listener.remote_port;
    match request(LayerRequest::PortUnsubscribe(LayerPortUnsubscription {
        port,
        listening_on,
    })) {
        Ok(_) => tracing::info!(port, "no longer receiving the target's traffic"),
        Err(error) => tracing::debug!(%error, port, "unsubscribing failed"),
    }
}
