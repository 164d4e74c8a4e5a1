//! Incoming traffic: `bind`, `listen` and `accept` of TCP sockets whose port belongs to the
//! target. What the config decides (which ports, which port of the target, `listen_ports`, the
//! subscription) is the layer's own `incoming_policy.rs`, included by path: one home for both
//! paths.
//!
//! - `bind` to such a port with a `listen_ports` entry binds the program's socket (a copy of it,
//!   `pidfd_getfd`: the same open socket) where the entry says, and remembers what was asked;
//!   any other `bind` runs as is.
//! - `listen`: the supervisor makes the socket listen itself (so it is ready before any connection
//!   can be delivered) and subscribes the target's port through the intproxy — mirror, steal, or
//!   steal with an HTTP filter — naming where the socket listens. The intproxy connects there for
//!   every delivered connection.
//! - `accept`/`accept4` on a subscribed, non-blocking listener (Go's are): the supervisor accepts
//!   on its copy, asks the intproxy who the real peer of a delivered connection is, writes that
//!   address into the program's buffer and places the connection in the program. A blocking
//!   `accept` is parked with the waiter (a worker must not wait for a connection) and served the
//!   same way there (`peer.rs`).
//! - Steal on a target of this machine (the agent's descriptor socket is known) for a listener that
//!   is non-blocking when it starts listening: the subscription asks for a handover
//!   (`SubscriptionMode::StealHandover`). The intproxy's delivery is then only the doorbell: the
//!   supervisor accepts it, takes the remote peer's own connection from the agent
//!   (`FdRequest::TakeIncoming`) and places that instead, so the program's requests and responses
//!   are plain system calls with nothing relayed; the delivery is closed. A connection the agent
//!   no longer keeps (it waited too long and is relayed) is placed as the delivery itself.
//!
//! The subscription lives as long as the supervisor's connection to the intproxy (the session).

use std::{
    collections::HashMap,
    net::SocketAddr,
    os::fd::{AsFd, BorrowedFd, OwnedFd},
    sync::Mutex,
};

use mirrord_config::resolved::IncomingConfig;
use mirrord_protocol::{
    ErrorCode, LayerRequest, LayerResponse,
    incoming::{IncomingConnectionInfoRequest, LayerPortSubscription, SubscriptionMode},
};

use crate::{
    layer_net::incoming_policy::{IncomingPolicy, reachable},
    net::{parse_sockaddr, sockaddr_bytes},
    net_filter::canonical,
    remote,
    serve::{Outcome, Worker},
    sys::{self, Notification},
};

/// Who connected to the target, and where to when the intproxy knows it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer {
    pub(crate) remote_peer: SocketAddr,
    destination: Option<SocketAddr>,
}

/// `feature.network.incoming` and the listeners it made, by socket inode.
#[derive(Debug)]
pub(crate) struct Incoming {
    policy: IncomingPolicy,
    listeners: Mutex<HashMap<u64, Listener>>,
}

/// A TCP socket bound or listening for the target.
#[derive(Debug, Clone, Copy, Default)]
struct Listener {
    /// What the program asked `bind` for, when `listen_ports` moved it elsewhere.
    requested: Option<SocketAddr>,
    /// Set once the target's port is subscribed for it.
    subscribed: bool,
    /// Subscribed for a handover: accepted connections are taken from the agent.
    handover: bool,
}

impl Incoming {
    /// `None` when incoming traffic is off.
    pub(crate) fn new(config: &IncomingConfig) -> Option<Self> {
        let policy = IncomingPolicy::new(config);
        policy.is_enabled().then(|| Self {
            policy,
            listeners: Mutex::default(),
        })
    }

    fn listeners(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Listener>> {
        self.listeners
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the socket with this inode listens for the target (its port is subscribed).
    pub(crate) fn subscribed(&self, inode: u64) -> bool {
        self.listeners()
            .get(&inode)
            .is_some_and(|listener| listener.subscribed)
    }
}

/// An `AF_INET`/`AF_INET6` stream socket's domain, else `None`.
fn tcp_domain(socket: BorrowedFd<'_>) -> Option<i32> {
    let (domain, kind) = sys::socket_kind(socket).ok()?;
    (kind == libc::SOCK_STREAM && matches!(domain, libc::AF_INET | libc::AF_INET6))
        .then_some(domain)
}

impl Worker {
    /// `bind(fd, address, length)`: `listen_ports`.
    pub(crate) fn bind(&mut self, call: &Notification) -> Outcome {
        let Some(incoming) = self.shared.incoming.as_ref() else {
            return Outcome::Continue;
        };
        let [fd, address, length, ..] = call.args;
        let mut raw = [0u8; 128];
        let length = (length as usize).min(raw.len());
        let Ok(read) = sys::read_memory(call.pid, address, &mut raw[..length]) else {
            return Outcome::Continue;
        };
        let Some(requested) = parse_sockaddr(&raw[..read]) else {
            return Outcome::Continue;
        };
        if !incoming.policy.handles(requested) {
            return Outcome::Continue;
        }
        let Some(port) = incoming.policy.listen_port(requested.port()) else {
            return Outcome::Continue;
        };
        let Ok(socket) = sys::take_thread_descriptor(call.pid, fd as i32) else {
            return Outcome::Continue;
        };
        let Some(domain) = tcp_domain(socket.as_fd()) else {
            return Outcome::Continue;
        };
        let Ok(inode) = sys::inode(socket.as_fd()) else {
            return Outcome::Continue;
        };
        if !self.shared.listener.id_valid(call.id) {
            return Outcome::Gone;
        }
        let really = SocketAddr::new(requested.ip(), port);
        if let Err(error) = sys::bind(socket.as_fd(), domain, really) {
            return Outcome::Fail(error.raw_os_error().unwrap_or(libc::EIO));
        }
        tracing::debug!(%requested, %really, "listen_ports: bound elsewhere");
        incoming.listeners().insert(
            inode,
            Listener {
                requested: Some(requested),
                subscribed: false,
                handover: false,
            },
        );
        Outcome::Value(0)
    }

    /// `listen(fd, backlog)`.
    pub(crate) fn listen(&mut self, call: &Notification) -> Outcome {
        let [fd, backlog, ..] = call.args;
        let Ok(socket) = sys::take_thread_descriptor(call.pid, fd as i32) else {
            return Outcome::Continue;
        };
        if tcp_domain(socket.as_fd()).is_none() {
            return Outcome::Continue;
        }
        let Ok(local) = sys::socket_name(socket.as_fd()) else {
            return Outcome::Continue;
        };
        self.shared
            .local_listeners
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(local.port());
        let Some(incoming) = self.shared.incoming.as_ref() else {
            return Outcome::Continue;
        };
        let Ok(inode) = sys::inode(socket.as_fd()) else {
            return Outcome::Continue;
        };
        let known = incoming.listeners().get(&inode).copied();
        if known.is_some_and(|listener| listener.subscribed) {
            return Outcome::Continue;
        }
        let requested = known
            .and_then(|listener| listener.requested)
            .unwrap_or(local);
        if !incoming.policy.handles(requested) {
            return Outcome::Continue;
        }
        let Some(mut subscription) = incoming
            .policy
            .subscription(incoming.policy.remote_port(requested.port()))
        else {
            return Outcome::Continue;
        };
        // Only a non-blocking listener's `accept` is served here, and so can take the connection.
        let handover = subscription.mode == SubscriptionMode::Steal
            && self.remote.has_native_fds()
            && sys::is_nonblocking(socket.as_fd()).unwrap_or(false);
        if handover {
            subscription.mode = SubscriptionMode::StealHandover;
        }
        if !self.shared.listener.id_valid(call.id) {
            return Outcome::Gone;
        }
        if let Err(error) = sys::listen(socket.as_fd(), backlog as i32) {
            return Outcome::Fail(error.raw_os_error().unwrap_or(libc::EIO));
        }
        let target_port = subscription.port;
        let subscription = LayerPortSubscription {
            subscription,
            listening_on: reachable(local),
        };
        let result = match self
            .remote
            .request(LayerRequest::PortSubscribe(subscription))
        {
            Ok(LayerResponse::PortSubscribed) => Outcome::Value(0),
            Ok(LayerResponse::PortSubscribedWithWarning(warning)) => {
                tracing::warn!(port = target_port, %warning, "subscribed with a warning");
                Outcome::Value(0)
            }
            Ok(other) => return Outcome::Fail(remote::unexpected(&other).errno()),
            Err(error) => {
                tracing::warn!(%error, port = target_port, "cannot receive the target's port");
                return Outcome::Fail(error.errno());
            }
        };
        incoming.listeners().insert(
            inode,
            Listener {
                requested: Some(requested),
                subscribed: true,
                handover,
            },
        );
        result
    }

    /// `accept(fd, address, length)` and `accept4(fd, address, length, flags)`.
    pub(crate) fn accept(&mut self, call: &Notification) -> Outcome {
        let Some(incoming) = self.shared.incoming.as_ref() else {
            return Outcome::Continue;
        };
        let [fd, address, length_address, flags, ..] = call.args;
        let flags = if libc::c_long::from(call.nr) == libc::SYS_accept4 {
            flags as i32
        } else {
            0
        };
        let Ok(socket) = sys::take_thread_descriptor(call.pid, fd as i32) else {
            return Outcome::Continue;
        };
        let Ok(inode) = sys::inode(socket.as_fd()) else {
            return Outcome::Continue;
        };
        let Some(listener) = incoming.listeners().get(&inode).copied() else {
            return Outcome::Continue;
        };
        if !listener.subscribed || !sys::is_nonblocking(socket.as_fd()).unwrap_or(false) {
            return Outcome::Continue;
        }
        let Ok((domain, _)) = sys::socket_kind(socket.as_fd()) else {
            return Outcome::Continue;
        };
        if !self.shared.listener.id_valid(call.id) {
            return Outcome::Gone;
        }
        let (connection, peer) = match sys::accept(socket.as_fd(), flags) {
            Ok(accepted) => accepted,
            Err(error) => return Outcome::Fail(error.raw_os_error().unwrap_or(libc::EIO)),
        };
        let info = peer.map(|peer| self.real_peer(peer));
        let peer = info.map(|info| info.remote_peer);
        let connection = match info {
            Some(info) if listener.handover && info.destination.is_some() => {
                self.take_stolen(connection, info)
            }
            _ => connection,
        };
        if address != 0
            && let Some(bytes) = peer.and_then(|peer| sockaddr_bytes(peer, domain))
        {
            let mut capacity = [0u8; 4];
            if sys::read_memory(call.pid, length_address, &mut capacity).ok() != Some(4) {
                return Outcome::Fail(libc::EFAULT);
            }
            let capacity = u32::from_ne_bytes(capacity) as usize;
            let written = bytes.len().min(capacity);
            let length = (bytes.len() as u32).to_ne_bytes();
            if sys::write_memory(call.pid, address, &bytes[..written]).is_err()
                || sys::write_memory(call.pid, length_address, &length).is_err()
            {
                return Outcome::Fail(libc::EFAULT);
            }
        }
        Outcome::Descriptor {
            fd: connection,
            cloexec: flags & libc::SOCK_CLOEXEC != 0,
        }
    }

    /// The peer that connected to the target and where to, for a connection the intproxy
    /// delivered from `peer`; `peer` itself (and no destination) for any other.
    pub(crate) fn real_peer(&mut self, peer: SocketAddr) -> Peer {
        let unknown = Peer {
            remote_peer: peer,
            destination: None,
        };
        if !canonical(peer).ip().is_loopback() {
            return unknown;
        }
        match self.remote.request(LayerRequest::IncomingConnectionInfo(
            IncomingConnectionInfoRequest {
                intproxy_addr: canonical(peer),
            },
        )) {
            Ok(LayerResponse::IncomingConnectionInfo(info)) => Peer {
                remote_peer: info.remote_peer,
                destination: Some(info.destination),
            },
            Err(error) if error.code == ErrorCode::NotFound => unknown,
            other => {
                tracing::debug!(?other, %peer, "the real peer of an accepted connection is unknown");
                unknown
            }
        }
    }

    /// The remote peer's own connection for the intproxy's `delivery` of it, taken from the agent
    /// and made blocking or not like `delivery`; `delivery` itself when the agent relays it.
    fn take_stolen(&mut self, delivery: OwnedFd, peer: Peer) -> OwnedFd {
        let Some(destination) = peer.destination else {
            return delivery;
        };
        let taken = match self.remote.take_incoming(peer.remote_peer, destination) {
            Ok(taken) => taken,
            Err(error) => {
                tracing::debug!(%error, remote_peer = %peer.remote_peer, "a stolen connection stays relayed");
                return delivery;
            }
        };
        let nonblocking = sys::is_nonblocking(delivery.as_fd()).unwrap_or(true);
        let taken = std::net::TcpStream::from(taken);
        if let Err(error) = taken.set_nonblocking(nonblocking) {
            // The agent let go of it: the connection is lost either way.
            tracing::debug!(%error, "cannot set a taken connection's blocking mode");
        }
        OwnedFd::from(taken)
    }
}
