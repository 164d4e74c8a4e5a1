//! Incoming traffic: the safe logic behind `bind`, `listen` and `accept`.
//!
//! The user's server keeps listening on a real local socket. `bind` decides whether the port belongs to
//! the target (after `port_mapping`, `ports`, `ignore_ports`, `ignore_localhost`), binds the socket to the
//! port `listen_ports` names, else to the requested one, else (taken, or privileged) to any free port;
//! `listen` subscribes the target's port through the intproxy, naming where the socket really listens.
//! The intproxy connects there for each incoming connection; `accept` asks it who the real peer is, so
//! that `accept`, `getpeername` and `getsockname` report the remote peer and the target's address.
//!
//! A listener is unsubscribed when the process that subscribed it closes its last descriptor of it (a
//! forked child closing its copy changes nothing), and by the intproxy when that process's connection
//! ends.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use mirrord_config::{
    file::IncomingMode,
    resolved::{self, IncomingConfig},
};
use mirrord_protocol::{
    ErrorCode, LayerRequest, LayerResponse,
    incoming::{
        HttpFilter, IncomingConnectionInfoRequest, LayerPortSubscription, LayerPortUnsubscription,
        PortSubscription, SubscriptionMode,
    },
};

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

/// What `feature.network.incoming` asks for.
#[derive(Debug)]
pub(crate) struct IncomingPolicy {
    /// `None`: incoming traffic is off.
    mode: Option<IncomingMode>,
    filter: Option<HttpFilter>,
    filter_ports: Option<Vec<u16>>,
    port_mapping: Vec<(u16, u16)>,
    listen_ports: Vec<(u16, u16)>,
    ignore_localhost: bool,
    ignore_ports: Vec<u16>,
    ports: Option<Vec<u16>>,
}

impl IncomingPolicy {
    pub(crate) fn new(config: &IncomingConfig) -> Self {
        Self {
            mode: (config.mode != IncomingMode::Off).then_some(config.mode),
            filter: config.http_filter.as_ref().map(protocol_filter),
            filter_ports: config.http_filter_ports.clone(),
            port_mapping: config.port_mapping.clone(),
            listen_ports: config.listen_ports.clone(),
            ignore_localhost: config.ignore_localhost,
            ignore_ports: config.ignore_ports.clone(),
            ports: config.ports.clone(),
        }
    }

    /// Whether any listener can receive the target's traffic.
    pub(crate) fn is_enabled(&self) -> bool {
        self.mode.is_some()
    }

    /// Whether a TCP listener bound to `requested` receives the target's traffic.
    pub(crate) fn handles(&self, requested: SocketAddr) -> bool {
        let port = requested.port();
        self.mode.is_some()
            && port != 0
            && !self.ignore_ports.contains(&port)
            && self
                .ports
                .as_ref()
                .is_none_or(|ports| ports.contains(&port))
            && !(self.ignore_localhost && canonical(requested).ip().is_loopback())
    }

    /// The target's port for a local port (`port_mapping`).
    pub(crate) fn remote_port(&self, local: u16) -> u16 {
        self.port_mapping
            .iter()
            .find(|(from, _)| *from == local)
            .map_or(local, |(_, to)| *to)
    }

    /// The local port to really listen on, when `listen_ports` names one.
    pub(crate) fn listen_port(&self, requested: u16) -> Option<u16> {
        self.listen_ports
            .iter()
            .find(|(from, _)| *from == requested)
            .map(|(_, to)| *to)
    }

    /// The subscription for the target's `port`.
    pub(crate) fn subscription(&self, port: u16) -> Option<PortSubscription> {
        let mode = match self.mode? {
            IncomingMode::Off => return None,
            IncomingMode::Mirror => SubscriptionMode::Mirror,
            IncomingMode::Steal => match &self.filter {
                Some(filter)
                    if self
                        .filter_ports
                        .as_ref()
                        .is_none_or(|ports| ports.contains(&port)) =>
                {
                    SubscriptionMode::StealHttp(filter.clone())
                }
                _ => SubscriptionMode::Steal,
            },
        };
        Some(PortSubscription { port, mode })
    }
}

fn protocol_filter(filter: &resolved::HttpFilter) -> HttpFilter {
    match filter {
        resolved::HttpFilter::Header(pattern) => HttpFilter::Header(pattern.clone()),
        resolved::HttpFilter::Path(pattern) => HttpFilter::Path(pattern.clone()),
        resolved::HttpFilter::Method(method) => HttpFilter::Method(method.clone()),
        resolved::HttpFilter::AllOf(filters) => {
            HttpFilter::AllOf(filters.iter().map(protocol_filter).collect())
        }
        resolved::HttpFilter::AnyOf(filters) => {
            HttpFilter::AnyOf(filters.iter().map(protocol_filter).collect())
        }
    }
}

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
        let Some(bytes) = sockaddr_bytes(SocketAddr::new(requested.ip(), port), info.domain) else {
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

/// Where the intproxy can reach a socket bound to `bound`: the unspecified address becomes loopback.
pub(crate) fn reachable(bound: SocketAddr) -> SocketAddr {
    let ip = match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    canonical(SocketAddr::new(ip, bound.port()))
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
    match sockaddr_bytes(info.remote_peer, accepted_info.domain) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mode: IncomingMode) -> IncomingConfig {
        IncomingConfig {
            mode,
            http_filter: None,
            http_filter_ports: None,
            port_mapping: vec![(8080, 80)],
            listen_ports: vec![(80, 9080)],
            ignore_localhost: false,
            ignore_ports: vec![9229],
            ports: None,
        }
    }

    fn address(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ports_are_chosen_by_the_config() {
        let policy = IncomingPolicy::new(&config(IncomingMode::Mirror));
        assert!(policy.handles(address("0.0.0.0:80")));
        assert!(policy.handles(address("127.0.0.1:80")));
        assert!(!policy.handles(address("0.0.0.0:0")), "ephemeral ports");
        assert!(!policy.handles(address("0.0.0.0:9229")), "ignore_ports");
        assert_eq!(policy.remote_port(8080), 80);
        assert_eq!(policy.remote_port(81), 81);
        assert_eq!(policy.listen_port(80), Some(9080));
        assert_eq!(policy.listen_port(81), None);

        let off = IncomingPolicy::new(&config(IncomingMode::Off));
        assert!(!off.is_enabled());
        assert!(!off.handles(address("0.0.0.0:80")));

        let mut only = config(IncomingMode::Steal);
        only.ports = Some(vec![80]);
        only.ignore_localhost = true;
        let only = IncomingPolicy::new(&only);
        assert!(only.handles(address("[::]:80")));
        assert!(!only.handles(address("0.0.0.0:81")));
        assert!(!only.handles(address("127.0.0.1:80")), "ignore_localhost");
        assert!(!only.handles(address("[::ffff:127.0.0.1]:80")));
    }

    #[test]
    fn the_mode_and_the_filter_make_the_subscription() {
        let mirror = IncomingPolicy::new(&config(IncomingMode::Mirror));
        assert_eq!(
            mirror.subscription(80).map(|s| s.mode),
            Some(SubscriptionMode::Mirror)
        );
        let mut steal = config(IncomingMode::Steal);
        steal.http_filter = Some(resolved::HttpFilter::AnyOf(vec![
            resolved::HttpFilter::Header("^x-user: me$".into()),
            resolved::HttpFilter::Method("POST".into()),
        ]));
        steal.http_filter_ports = Some(vec![80]);
        let steal = IncomingPolicy::new(&steal);
        assert_eq!(
            steal.subscription(80).map(|s| s.mode),
            Some(SubscriptionMode::StealHttp(HttpFilter::AnyOf(vec![
                HttpFilter::Header("^x-user: me$".into()),
                HttpFilter::Method("POST".into()),
            ])))
        );
        assert_eq!(
            steal.subscription(443).map(|s| s.mode),
            Some(SubscriptionMode::Steal),
            "ports outside http_filter.ports are stolen whole"
        );
    }

    #[test]
    fn the_intproxy_reaches_unspecified_listeners_on_loopback() {
        assert_eq!(reachable(address("0.0.0.0:80")), address("127.0.0.1:80"));
        assert_eq!(reachable(address("[::]:80")), address("[::1]:80"));
        assert_eq!(reachable(address("10.0.0.5:80")), address("10.0.0.5:80"));
        assert_eq!(
            reachable(address("[::ffff:127.0.0.1]:80")),
            address("127.0.0.1:80")
        );
    }
}
