//! Outgoing traffic: the safe logic behind the socket shims.
//!
//! The layer never relays bytes. For a connection that should leave from the target it asks the intproxy
//! (`OutgoingConnect`) and connects the user's own socket, with the original `connect`, to the loopback
//! address the intproxy answers; reads and writes then stay plain system calls. Datagrams sent with an
//! address get one relay per (socket, destination), and the sources of received datagrams are translated
//! back. `getpeername`/`getsockname` report the remote peer and the agent's socket address. When the
//! agent runs on this machine, a stream `connect` instead gets a socket of the target itself
//! ([`native`]).
//!
//! Loopback follows mirrord's `outgoing.ignore_localhost` (default `false`): a connection to
//! 127.0.0.0/8 or `::1` goes to the target's own loopback (its sidecars: a mesh proxy, a database
//! proxy, a metrics agent), except to the intproxy, to the ports of `incoming.ignore_ports` (where the
//! IDE puts a launch's debugger ports), to ports an `outgoing.filter` keeps local, and to listeners
//! that this process or another process of the session opened locally (so a program that talks to
//! itself keeps working; the intproxy keeps the session's list). `true` keeps all loopback local.
//! With `network.ipv6` off, IPv6 destinations (not IPv4-mapped ones) stay local. Unix stream
//! `connect`s to a path matching `outgoing.unix_streams` reach the target's socket at that path.
//! The unspecified address always stays local.

pub(crate) mod filter;
pub(crate) mod incoming;
pub(crate) mod incoming_policy;
pub(crate) mod native;
mod outgoing_policy;
pub(crate) mod shims;
pub(crate) mod sockaddr;
pub(crate) mod udp;
mod unix;

use std::{
    any::Any,
    collections::BTreeMap,
    ffi::c_int,
    net::{IpAddr, SocketAddr, ToSocketAddrs},
    os::fd::RawFd,
    sync::Mutex,
};

use mirrord_protocol::{
    LayerRequest, LayerResponse, RemoteError,
    fd_channel::FdRequest,
    outgoing::{LocalListener, OutgoingConnectRequest, OutgoingConnected, TransportProtocol},
};

pub(crate) use self::outgoing_policy::{OutgoingPolicy, Route};
pub(crate) use self::sockaddr::{parse_sockaddr, sockaddr_bytes};
use self::{
    filter::{Protocol, canonical},
    sockaddr::unix_path,
    udp::{Connected, SocketState},
    unix::connect_unix,
};
use crate::{
    connection::{request, unexpected},
    detour::{Outcome, errno, lock},
    fd_table::{FDS, FdEntry, SocketInfo},
    process, setup,
};

/// A listener this process opened locally (not one of the target's ports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LocalListen {
    /// The port the process asked for.
    pub(crate) port: u16,
    /// Where it really listens (loopback for an unspecified bind).
    pub(crate) listening_on: SocketAddr,
    /// The process that told the intproxy.
    pub(crate) owner: u32,
}

/// State of the sockets the layer manages, by fd.
static SOCKETS: Mutex<BTreeMap<RawFd, SocketState>> = Mutex::new(BTreeMap::new());
/// Names from filter entries, resolved once.
static FILTER_NAMES: Mutex<BTreeMap<String, Vec<IpAddr>>> = Mutex::new(BTreeMap::new());

/// Takes the socket lock for the duration of a `fork` (see [`crate::process`]).
pub(crate) fn lock_for_fork() -> Box<dyn Any> {
    Box::new(lock(&SOCKETS))
}

/// Forgets a managed socket's state (its fd was closed or replaced).
pub(crate) fn forget(fd: RawFd) {
    let removed = lock(&SOCKETS).remove(&fd);
    let Some(removed) = removed else { return };
    if let Some(listener) = removed.listener {
        incoming::closed(listener);
    }
    if let Some(listener) = removed.local_listener
        && listener.owner == process::pid()
    {
        let shared = lock(&SOCKETS)
            .values()
            .any(|state| state.local_listener == Some(listener));
        if !shared {
            tell_intproxy(listener, false);
        }
    }
}

/// Drops `fd`'s state without the clean-up of a close: its socket was replaced by one of the
/// target, which the layer need not manage.
fn forget_state(fd: RawFd) {
    lock(&SOCKETS).remove(&fd);
    if let Some(FdEntry::Socket(info)) = FDS.get(fd) {
        let _ = FDS.set(
            fd,
            FdEntry::Socket(SocketInfo {
                managed: false,
                ..info
            }),
        );
    }
}

/// Gives `new_fd` a copy of `old_fd`'s state (`dup`).
pub(crate) fn copy_state(old_fd: RawFd, new_fd: RawFd) {
    let mut sockets = lock(&SOCKETS);
    if let Some(state) = sockets.get(&old_fd).cloned() {
        sockets.insert(new_fd, state);
    }
}

/// `socket()` made `fd`: remember the family and type of inet sockets.
pub(crate) fn socket_created(fd: RawFd, domain: c_int, kind: c_int) {
    if domain != libc::AF_INET && domain != libc::AF_INET6 {
        return;
    }
    let info = SocketInfo {
        domain: domain as u8,
        kind: (kind & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)) as u8,
        managed: false,
    };
    if let Ok(Some(stale)) = FDS.set(fd, FdEntry::Socket(info)) {
        crate::files::forget_entry(fd, stale);
    }
}

/// The family and type of `fd`: from the table, else asked from the kernel (a socket made before the
/// layer started, or by a function the layer does not hook).
fn socket_info(fd: RawFd) -> Option<SocketInfo> {
    if let Some(FdEntry::Socket(info)) = FDS.get(fd) {
        return Some(info);
    }
    let option = |name: c_int| -> Option<c_int> {
        let mut value: c_int = 0;
        let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
        // SAFETY: `value` and `len` are a writable int and its size, as getsockopt(2) requires.
        let result = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                name,
                (&mut value as *mut c_int).cast(),
                &mut len,
            )
        };
        (result == 0).then_some(value)
    };
    let domain = option(libc::SO_DOMAIN)?;
    let kind = option(libc::SO_TYPE)?;
    (domain == libc::AF_INET || domain == libc::AF_INET6).then_some(SocketInfo {
        domain: domain as u8,
        kind: kind as u8,
        managed: false,
    })
}

fn protocol_of(info: SocketInfo) -> Option<Protocol> {
    match c_int::from(info.kind) {
        libc::SOCK_STREAM => Some(Protocol::Tcp),
        libc::SOCK_DGRAM => Some(Protocol::Udp),
        _ => None,
    }
}

/// Marks `fd` as managed in the table.
fn mark_managed(fd: RawFd, info: SocketInfo) {
    let managed = SocketInfo {
        managed: true,
        ..info
    };
    let _ = FDS.set(fd, FdEntry::Socket(managed));
}

/// Resolves a filter entry's name: through the target when DNS for it goes there, else locally.
fn resolve_filter_name(name: &str) -> Vec<IpAddr> {
    if let Some(addresses) = lock(&FILTER_NAMES).get(name) {
        return addresses.clone();
    }
    let remote = setup::layer().is_some_and(|layer| layer.dns.sends(name, None));
    let addresses = if remote {
        crate::dns::resolve_remote(name).unwrap_or_default()
    } else {
        (name, 0)
            .to_socket_addrs()
            .map(|addresses| addresses.map(|address| address.ip()).collect())
            .unwrap_or_default()
    };
    lock(&FILTER_NAMES).insert(name.to_owned(), addresses.clone());
    addresses
}

/// Asks the intproxy for a relay to `remote`.
fn outgoing_connect(
    remote: SocketAddr,
    protocol: Protocol,
) -> Result<OutgoingConnected, RemoteError> {
    let protocol = match protocol {
        Protocol::Tcp => TransportProtocol::Tcp,
        Protocol::Udp => TransportProtocol::Udp,
    };
    match request(LayerRequest::OutgoingConnect(OutgoingConnectRequest {
        remote: canonical(remote),
        protocol,
    }))? {
        LayerResponse::OutgoingConnected(connected) => Ok(connected),
        other => Err(unexpected(&other)),
    }
}

/// `connect`: through the target when the destination goes there (a socket of the target when the
/// agent is on this machine, else the intproxy's relay), to the real address of a session's local
/// listener for its loopback port, else untouched. `local` runs the original `connect` with another
/// address.
pub(crate) fn connect(
    fd: RawFd,
    address: &[u8],
    local: impl FnOnce(&[u8]) -> c_int,
) -> Outcome<c_int> {
    let Some(layer) = setup::layer() else {
        return Outcome::Bypass("inactive");
    };
    if let Some(path) = unix_path(address) {
        return connect_unix(fd, path, local);
    }
    let Some(remote) = parse_sockaddr(address) else {
        return Outcome::Bypass("not an inet address");
    };
    let Some(info) = socket_info(fd) else {
        return Outcome::Bypass("not an inet socket");
    };
    let Some(protocol) = protocol_of(info) else {
        return Outcome::Bypass("neither stream nor datagram");
    };
    let route = layer.outgoing.route(protocol, remote, &resolve_filter_name);
    if route == Route::Local {
        return Outcome::Bypass("local destination");
    }
    if process::in_borrowed_memory() {
        return Outcome::Bypass("vfork child");
    }
    if route == Route::Loopback
        && protocol == Protocol::Tcp
        && let Some(listening_on) = session_listener(remote.port())
    {
        if canonical(listening_on) == canonical(remote) {
            return Outcome::Bypass("a listener of the session");
        }
        let Some(real) = sockaddr_bytes(listening_on, info.domain.into()) else {
            return Outcome::Bypass("a listener of the session in another family");
        };
        tracing::debug!(%remote, %listening_on, "to a listener of the session");
        let result = local(&real);
        return if result == 0 {
            Outcome::Handled(0)
        } else {
            Outcome::Fail(errno())
        };
    }
    if protocol == Protocol::Tcp && layer.agent_sockets.is_some() && !native::is_bound(fd) {
        return native::connect(fd, FdRequest::Connect { remote }, true);
    }
    let connected = match outgoing_connect(remote, protocol) {
        Ok(connected) => connected,
        Err(error) => {
            tracing::debug!(%error, %remote, "outgoing connection refused");
            return Outcome::Fail(error.errno());
        }
    };
    let Some(relay) = sockaddr_bytes(connected.intproxy_addr, info.domain.into()) else {
        return Outcome::Fail(libc::EAFNOSUPPORT);
    };
    let result = local(&relay);
    let connect_errno = errno();
    if result == 0 || connect_errno == libc::EINPROGRESS {
        lock(&SOCKETS).entry(fd).or_default().connected = Some(Connected {
            remote,
            agent_local: connected.agent_local_addr,
            relay: connected.intproxy_addr,
        });
        mark_managed(fd, info);
        tracing::debug!(%remote, relay = %connected.intproxy_addr, "connected through the target");
    }
    if result == 0 {
        Outcome::Handled(0)
    } else {
        Outcome::Fail(connect_errno)
    }
}

/// Where a listener of the session listens for loopback `port`: one of this process (or inherited
/// over `fork`), else one another process of the session told the intproxy about.
fn session_listener(port: u16) -> Option<SocketAddr> {
    let own = lock(&SOCKETS).values().find_map(|state| {
        state
            .local_listener
            .filter(|listener| listener.port == port)
            .map(|listener| listener.listening_on)
            .or_else(|| {
                state
                    .listener
                    .filter(|listener| listener.requested.port() == port)
                    .and_then(|listener| listener.listening_on)
            })
    });
    if own.is_some() {
        return own;
    }
    match request(LayerRequest::FindLocalListener { port }) {
        Ok(LayerResponse::LocalListenerFound(found)) => found,
        Ok(other) => {
            tracing::debug!(error = %unexpected(&other), "no answer about local listeners");
            None
        }
        Err(error) => {
            tracing::debug!(%error, "no answer about local listeners");
            None
        }
    }
}

/// After a successful `listen` on `fd` (really bound to `bound`) that is not a listener of the
/// target: remember it, and tell the intproxy, so that loopback connections to its port from any
/// process of the session stay local.
pub(crate) fn local_listening(fd: RawFd, bound: &[u8]) {
    let Some(layer) = setup::layer() else {
        return;
    };
    if !layer.outgoing.tracks_local_listeners() || process::in_borrowed_memory() {
        return;
    }
    let Some(bound) = parse_sockaddr(bound) else {
        return;
    };
    if lock(&SOCKETS)
        .get(&fd)
        .is_some_and(|state| state.listener.is_some() || state.local_listener.is_some())
    {
        return;
    }
    let listening_on = incoming::reachable(bound);
    let listener = LocalListen {
        port: bound.port(),
        listening_on,
        owner: process::pid(),
    };
    let Some(info) = socket_info(fd) else { return };
    lock(&SOCKETS).entry(fd).or_default().local_listener = Some(listener);
    mark_managed(fd, info);
    tell_intproxy(listener, true);
}

fn tell_intproxy(listener: LocalListen, open: bool) {
    let update = LocalListener {
        port: listener.port,
        listening_on: listener.listening_on,
        open,
    };
    if let Err(error) = request(LayerRequest::LocalListener(update)) {
        tracing::debug!(%error, port = listener.port, "the intproxy was not told of a local listener");
    }
}

/// `getpeername` on a managed socket: the remote peer (for a relayed unix stream, the target's
/// socket path), as a socket address of the socket's family.
pub(crate) fn peer_name(fd: RawFd) -> Outcome<Vec<u8>> {
    let unix_peer = lock(&SOCKETS)
        .get(&fd)
        .and_then(|state| state.unix_peer.clone());
    if let Some(peer) = unix_peer {
        return Outcome::Handled(peer);
    }
    connected_address(fd, |connected| connected.remote)
}

/// `getsockname` on a managed socket: the agent socket's address, or for a listener of the target the
/// address the user bound.
pub(crate) fn socket_name(fd: RawFd) -> Outcome<Vec<u8>> {
    if let Some(requested) = incoming::listener_name(fd)
        && let Some(FdEntry::Socket(info)) = FDS.get(fd)
    {
        return Outcome::Handled(sockaddr_bytes(requested, info.domain.into()).unwrap_or_default());
    }
    connected_address(fd, |connected| connected.agent_local)
}

/// The address `pick` chooses, as a socket address of the socket's family (empty when it cannot
/// be expressed in that family: nothing is written then).
fn connected_address(fd: RawFd, pick: impl FnOnce(&Connected) -> SocketAddr) -> Outcome<Vec<u8>> {
    let Some(FdEntry::Socket(info)) = FDS.get(fd) else {
        return Outcome::Bypass("not a managed socket");
    };
    match lock(&SOCKETS)
        .get(&fd)
        .and_then(|state| state.connected.as_ref())
    {
        Some(connected) => Outcome::Handled(
            sockaddr_bytes(pick(connected), info.domain.into()).unwrap_or_default(),
        ),
        None => Outcome::Bypass("not connected through the target"),
    }
}

/// `sendto`/`sendmsg` with a destination on a datagram socket: to the destination's relay when it goes
/// through the target. `send` runs the original with another destination.
pub(crate) fn send_to(
    fd: RawFd,
    destination: &[u8],
    send: impl FnOnce(&[u8]) -> isize,
) -> Outcome<isize> {
    let Some(layer) = setup::layer() else {
        return Outcome::Bypass("inactive");
    };
    let Some(remote) = parse_sockaddr(destination) else {
        return Outcome::Bypass("not an inet address");
    };
    let Some(info) = socket_info(fd) else {
        return Outcome::Bypass("not an inet socket");
    };
    if protocol_of(info) != Some(Protocol::Udp)
        || !layer
            .outgoing
            .sends(Protocol::Udp, remote, &resolve_filter_name)
    {
        return Outcome::Bypass("local destination");
    }
    if process::in_borrowed_memory() {
        return Outcome::Bypass("vfork child");
    }
    let known = lock(&SOCKETS)
        .get(&fd)
        .and_then(|state| state.relay_for(remote));
    let relay = match known {
        Some(relay) => relay,
        None => match outgoing_connect(remote, Protocol::Udp) {
            Ok(connected) => {
                lock(&SOCKETS)
                    .entry(fd)
                    .or_default()
                    .add_relay(remote, connected.intproxy_addr);
                mark_managed(fd, info);
                connected.intproxy_addr
            }
            Err(error) => {
                tracing::debug!(%error, %remote, "datagram relay refused");
                return Outcome::Fail(error.errno());
            }
        },
    };
    let Some(relay) = sockaddr_bytes(relay, info.domain.into()) else {
        return Outcome::Fail(libc::EAFNOSUPPORT);
    };
    let sent = send(&relay);
    if sent < 0 {
        Outcome::Fail(errno())
    } else {
        Outcome::Handled(sent)
    }
}

/// The address to report for a datagram received from `source` on a managed socket, when `source` is
/// one of its relays.
pub(crate) fn remote_source(fd: RawFd, source: &[u8]) -> Option<(SocketAddr, u8)> {
    let Some(FdEntry::Socket(info)) = FDS.get(fd) else {
        return None;
    };
    let source = parse_sockaddr(source)?;
    lock(&SOCKETS)
        .get(&fd)
        .and_then(|state| state.remote_source(source))
        .map(|remote| (remote, info.domain))
}

/// Whether `ip` is the canonical form of a loopback address (used by tests and logs).
#[cfg(test)]
fn is_loopback(ip: IpAddr) -> bool {
    filter::canonical_ip(ip).is_loopback()
}

#[cfg(test)]
mod tests {
    use mirrord_config::resolved::{NetworkConfig, ResolvedAddressFilter, ResolvedConfig};

    use super::{unix::unix_sockaddr, *};

    fn address(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn network(change: impl FnOnce(&mut NetworkConfig)) -> OutgoingPolicy {
        let mut config = ResolvedConfig::default().feature.network;
        config.outgoing.udp = false;
        change(&mut config);
        OutgoingPolicy::new(&config, address("127.0.0.1:4000")).unwrap()
    }

    fn policy(filter: Option<ResolvedAddressFilter>) -> OutgoingPolicy {
        network(|config| config.outgoing.filter = filter)
    }

    fn no_names(_: &str) -> Vec<IpAddr> {
        Vec::new()
    }

    #[test]
    fn loopback_goes_to_the_target_except_the_sessions_own_ports() {
        let policy = network(|config| {
            config.incoming.ignore_ports = vec![9229];
            config.outgoing.filter = Some(ResolvedAddressFilter::Local(vec![":5432".into()]));
        });
        let route = |text| policy.route(Protocol::Tcp, address(text), &no_names);
        for destination in ["127.0.0.1:80", "127.9.9.9:80", "[::ffff:127.0.0.1]:80"] {
            assert_eq!(route(destination), Route::Loopback, "{destination}");
        }
        assert_eq!(route("127.0.0.1:4000"), Route::Local, "the intproxy");
        assert_eq!(route("127.0.0.1:9229"), Route::Local, "a debugger port");
        assert_eq!(route("127.0.0.1:5432"), Route::Local, "the filter's port");
        assert_eq!(route("0.0.0.0:80"), Route::Local, "unspecified");
        assert_eq!(route("10.242.0.2:7"), Route::Remote);
        assert!(policy.tracks_local_listeners());

        let ignored = network(|config| config.outgoing.ignore_localhost = true);
        assert_eq!(
            ignored.route(Protocol::Tcp, address("127.0.0.1:80"), &no_names),
            Route::Local
        );
        assert!(!ignored.tracks_local_listeners());
        assert!(is_loopback("::ffff:127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn ipv6_destinations_stay_local_unless_ipv6_is_on() {
        let off = policy(None);
        assert_eq!(
            off.route(Protocol::Tcp, address("[fd00::1]:80"), &no_names),
            Route::Local
        );
        assert_eq!(
            off.route(Protocol::Tcp, address("[::1]:80"), &no_names),
            Route::Local
        );
        assert_eq!(
            off.route(Protocol::Tcp, address("[::ffff:10.0.0.1]:80"), &no_names),
            Route::Remote,
            "IPv4-mapped addresses are IPv4"
        );
        let on = network(|config| config.ipv6 = true);
        assert_eq!(
            on.route(Protocol::Tcp, address("[fd00::1]:80"), &no_names),
            Route::Remote
        );
        assert_eq!(
            on.route(Protocol::Tcp, address("[::1]:80"), &no_names),
            Route::Loopback
        );
    }

    #[test]
    fn unix_streams_match_paths_by_regex() {
        let matching = network(|config| {
            config.outgoing.unix_streams = vec!["^/run/app\\.sock$".into(), "docker".into()];
        });
        assert!(matching.is_enabled());
        assert!(matching.sends_unix(b"/run/app.sock"));
        assert!(matching.sends_unix(b"/var/run/docker.sock"));
        assert!(!matching.sends_unix(b"/run/app.sock.old"));
        assert!(!policy(None).sends_unix(b"/run/app.sock"));
        let mut address = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
        address.extend_from_slice(b"/run/app.sock\0\0\0");
        assert_eq!(unix_path(&address), Some(&b"/run/app.sock"[..]));
        let abstract_name = [&address[..2], b"\0name"].concat();
        assert_eq!(unix_path(&abstract_name), None);
        let relay = unix_sockaddr(b"/run/user/0/mirrord-intproxy-1-2/0.sock").unwrap();
        assert_eq!(
            unix_path(&relay),
            Some(&b"/run/user/0/mirrord-intproxy-1-2/0.sock"[..])
        );
        assert_eq!(unix_sockaddr(&[b'a'; 108]), None, "too long for sun_path");
        let mut config = ResolvedConfig::default().feature.network;
        config.outgoing.unix_streams = vec!["(".into()];
        let error = OutgoingPolicy::new(&config, address_of_intproxy()).unwrap_err();
        assert!(error.contains("unix_streams"), "{error}");
    }

    fn address_of_intproxy() -> SocketAddr {
        address("127.0.0.1:4000")
    }

    #[test]
    fn protocols_can_be_switched_off_and_filtered() {
        let policy = policy(Some(ResolvedAddressFilter::Local(vec![
            "10.0.0.0/8".into(),
        ])));
        assert!(!policy.sends(Protocol::Udp, address("192.168.1.1:53"), &no_names));
        assert!(!policy.sends(Protocol::Tcp, address("10.242.0.2:7"), &no_names));
        assert!(policy.sends(Protocol::Tcp, address("192.168.1.1:443"), &no_names));
        let remote_only = policy_remote();
        assert_eq!(
            remote_only.route(Protocol::Tcp, address("127.0.0.1:80"), &no_names),
            Route::Local,
            "a remote filter sends only what it names, loopback too"
        );
        assert_eq!(
            remote_only.route(Protocol::Tcp, address("127.0.0.1:8500"), &no_names),
            Route::Loopback
        );
    }

    fn policy_remote() -> OutgoingPolicy {
        policy(Some(ResolvedAddressFilter::Remote(vec![
            "127.0.0.1:8500".into(),
        ])))
    }

    #[test]
    fn sockaddrs_round_trip_in_both_families() {
        for (text, domain) in [
            ("10.242.0.2:7", libc::AF_INET),
            ("[fd00::1]:443", libc::AF_INET6),
        ] {
            let bytes = sockaddr_bytes(address(text), domain).unwrap();
            assert_eq!(parse_sockaddr(&bytes), Some(address(text)));
        }
        let mapped = sockaddr_bytes(address("127.0.0.1:9"), libc::AF_INET6).unwrap();
        assert_eq!(mapped.len(), std::mem::size_of::<libc::sockaddr_in6>());
        assert_eq!(
            parse_sockaddr(&mapped),
            Some(address("[::ffff:127.0.0.1]:9"))
        );
        assert_eq!(sockaddr_bytes(address("[fd00::1]:1"), libc::AF_INET), None);
        assert_eq!(parse_sockaddr(&[0; 3]), None);
        let unix = (libc::AF_UNIX as u16).to_ne_bytes();
        assert_eq!(parse_sockaddr(&[unix[0], unix[1], 0, 0, 0, 0, 0, 0]), None);
    }

    #[test]
    fn sockaddr_bytes_match_the_kernel_layout() {
        let bytes = sockaddr_bytes(address("1.2.3.4:258"), libc::AF_INET).unwrap();
        // SAFETY: `bytes` has exactly the size of `sockaddr_in`; read_unaligned copes with any alignment.
        let raw: libc::sockaddr_in = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        assert_eq!(c_int::from(raw.sin_family), libc::AF_INET);
        assert_eq!(u16::from_be(raw.sin_port), 258);
        assert_eq!(raw.sin_addr.s_addr.to_ne_bytes(), [1, 2, 3, 4]);
    }
}
