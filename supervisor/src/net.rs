//! Outgoing traffic: `connect` of a TCP or UDP socket to an address that the config sends through
//! the target. The supervisor takes a copy of the program's socket (`pidfd_getfd`: the same open
//! socket, not a new one), asks the intproxy for a relay (`OutgoingConnect`) and connects the socket
//! to the relay's loopback address itself; the program's later `read`/`write`/`send`/`recv` are
//! plain system calls on the relayed socket. A non-blocking socket gets `EINPROGRESS` as usual.
//!
//! That is also how Go's own DNS resolver reaches the target's nameserver: it reads the target's
//! `/etc/resolv.conf` and `/etc/hosts` (file calls, decided by the `fs` policy's built-in list) and
//! sends its queries on a connected UDP socket.
//!
//! Datagrams sent with an address (`sendto`, `sendmsg`) on an unconnected UDP socket are in
//! `udp.rs`.
//!
//! Loopback destinations go to the target's loopback (its DNS server may listen there), except
//! ports a process of the session listens on (recorded at `listen`) and what the config keeps
//! local.

use std::{
    net::{SocketAddr, ToSocketAddrs},
    os::fd::AsFd,
};

use mirrord_config::resolved::ResolvedConfig;
use mirrord_protocol::{
    LayerRequest, LayerResponse,
    files::TargetPath,
    outgoing::{OutgoingConnectRequest, OutgoingUnixConnectRequest, TransportProtocol},
};

pub(crate) use crate::layer_net::sockaddr::{parse_sockaddr, sockaddr_bytes, unix_path};
use crate::{
    net_filter::{AddressFilter, Protocol, canonical},
    remote,
    serve::{Outcome, Worker},
    sys::{self, Notification},
};

/// What `feature.network.outgoing` asks for.
#[derive(Debug)]
pub(crate) struct OutgoingPolicy {
    tcp: bool,
    udp: bool,
    ipv6: bool,
    ignore_localhost: bool,
    /// Loopback ports that always stay local (`incoming.ignore_ports`: the debugger's).
    local_ports: Vec<u16>,
    filter: Option<AddressFilter>,
    /// `unix_streams`: paths of unix stream sockets reached in the target.
    unix_streams: Option<regex::bytes::RegexSet>,
    /// The relay of each (socket inode, destination) that datagrams were sent to with an address
    /// (`sendto`/`sendmsg`, `udp.rs`): one per pair, so replies reach the socket that asked.
    pub(crate) datagram_relays:
        std::sync::Mutex<std::collections::HashMap<(u64, SocketAddr), SocketAddr>>,
}

impl OutgoingPolicy {
    /// Compiles the config; the error names the key.
    pub(crate) fn new(config: &ResolvedConfig) -> Result<Self, String> {
        let network = &config.feature.network;
        let filter = network
            .outgoing
            .filter
            .as_ref()
            .map(AddressFilter::new)
            .transpose()
            .map_err(|error| format!("feature.network.outgoing.filter: {error}"))?;
        let unix_streams = if network.outgoing.unix_streams.is_empty() {
            None
        } else {
            Some(
                regex::bytes::RegexSet::new(&network.outgoing.unix_streams)
                    .map_err(|error| format!("feature.network.outgoing.unix_streams: {error}"))?,
            )
        };
        Ok(Self {
            tcp: network.outgoing.tcp,
            udp: network.outgoing.udp,
            ipv6: network.ipv6,
            ignore_localhost: network.outgoing.ignore_localhost,
            local_ports: network.incoming.ignore_ports.clone(),
            filter,
            unix_streams,
            datagram_relays: Default::default(),
        })
    }

    /// Whether any `connect` needs the supervisor.
    pub(crate) fn is_enabled(&self) -> bool {
        self.tcp || self.udp || self.unix_streams.is_some()
    }

    /// Whether a unix stream `connect` to `path` goes to the target's socket (`unix_streams`).
    pub(crate) fn sends_unix(&self, path: &[u8]) -> bool {
        self.unix_streams
            .as_ref()
            .is_some_and(|set| set.is_match(path))
    }

    /// Whether traffic of `protocol` to `destination` goes through the target. Loopback goes to
    /// the target's loopback too (its DNS server may listen there), unless a listener of the
    /// session has the port (`session_listens`, TCP only) or the config keeps it local.
    pub(crate) fn sends(
        &self,
        protocol: Protocol,
        destination: SocketAddr,
        session_listens: impl Fn(u16) -> bool,
    ) -> bool {
        let enabled = match protocol {
            Protocol::Tcp => self.tcp,
            Protocol::Udp => self.udp,
        };
        let destination = canonical(destination);
        let ip = destination.ip();
        if !enabled || ip.is_unspecified() || (ip.is_ipv6() && !self.ipv6) {
            return false;
        }
        if ip.is_loopback()
            && (self.ignore_localhost
                || self.local_ports.contains(&destination.port())
                || (protocol == Protocol::Tcp && session_listens(destination.port())))
        {
            return false;
        }
        self.filter.as_ref().is_none_or(|filter| {
            filter.sends_address(protocol, destination, &|name: &str| {
                (name, 0)
                    .to_socket_addrs()
                    .map(|found| found.map(|address| address.ip()).collect())
                    .unwrap_or_default()
            })
        })
    }
}

impl Worker {
    /// `connect(fd, address, length)`.
    pub(crate) fn connect(&mut self, call: &Notification) -> Outcome {
        let Some(policy) = self.shared.outgoing.as_ref() else {
            return Outcome::Continue;
        };
        let [fd, address, length, ..] = call.args;
        let length = (length as usize).min(128);
        let mut raw = [0u8; 128];
        let Ok(read) = sys::read_memory(call.pid, address, &mut raw[..length]) else {
            return Outcome::Continue;
        };
        if let Some(path) = unix_path(&raw[..read]) {
            return self.connect_unix(call, fd as i32, path);
        }
        let Some(destination) = parse_sockaddr(&raw[..read]) else {
            return Outcome::Continue;
        };
        let Ok(socket) = sys::take_thread_descriptor(call.pid, fd as i32) else {
            return Outcome::Continue;
        };
        let Ok((domain, kind)) = sys::socket_kind(socket.as_fd()) else {
            return Outcome::Continue;
        };
        let (protocol, transport) = match kind {
            libc::SOCK_STREAM => (Protocol::Tcp, TransportProtocol::Tcp),
            libc::SOCK_DGRAM => (Protocol::Udp, TransportProtocol::Udp),
            _ => return Outcome::Continue,
        };
        let listens = |port| self.shared.session_listens(port);
        if !policy.sends(protocol, destination, listens) {
            return Outcome::Continue;
        }
        if !self.shared.listener.id_valid(call.id) {
            return Outcome::Gone;
        }
        let connected =
            match self
                .remote
                .request(LayerRequest::OutgoingConnect(OutgoingConnectRequest {
                    remote: destination,
                    protocol: transport,
                })) {
                Ok(LayerResponse::OutgoingConnected(connected)) => connected,
                Ok(other) => return Outcome::Fail(remote::unexpected(&other).errno()),
                Err(error) => {
                    tracing::debug!(%error, %destination, "outgoing connection refused");
                    return Outcome::Fail(error.errno());
                }
            };
        tracing::debug!(%destination, relay = %connected.intproxy_addr, "connected through the target");
        match sys::connect(socket.as_fd(), domain, connected.intproxy_addr) {
            Ok(()) => Outcome::Value(0),
            Err(error) => Outcome::Fail(error.raw_os_error().unwrap_or(libc::EIO)),
        }
    }
}

impl Worker {
    /// `connect` of a unix socket to `path`: when `unix_streams` matches, the agent connects to
    /// the socket at that path inside the target and the intproxy relays it from a unix socket of
    /// its own, to which the supervisor connects (its copy of) the program's socket. The program
    /// keeps its own socket, so a registration with `epoll` made before `connect` (Go's) stays
    /// valid; that is why targets on this machine take the relay too rather than a socket passed
    /// by the agent.
    fn connect_unix(&mut self, call: &Notification, fd: i32, path: &[u8]) -> Outcome {
        let Some(policy) = self.shared.outgoing.as_ref() else {
            return Outcome::Continue;
        };
        if !policy.sends_unix(path) {
            return Outcome::Continue;
        }
        let Ok(socket) = sys::take_thread_descriptor(call.pid, fd) else {
            return Outcome::Continue;
        };
        if sys::socket_kind(socket.as_fd()).ok() != Some((libc::AF_UNIX, libc::SOCK_STREAM)) {
            return Outcome::Continue;
        }
        if !self.shared.listener.id_valid(call.id) {
            return Outcome::Gone;
        }
        let path = TargetPath::from_bytes(path);
        let request =
            LayerRequest::OutgoingUnixConnect(OutgoingUnixConnectRequest { path: path.clone() });
        let relay = match self.remote.request(request) {
            Ok(LayerResponse::OutgoingUnixConnected(connected)) => connected.intproxy_path,
            Ok(other) => return Outcome::Fail(remote::unexpected(&other).errno()),
            Err(error) => {
                tracing::debug!(%error, %path, "unix stream connection refused");
                return Outcome::Fail(error.errno());
            }
        };
        let Ok(address) = socket2::SockAddr::unix(relay.as_path()) else {
            return Outcome::Fail(libc::ENAMETOOLONG);
        };
        let socket = socket2::Socket::from(socket);
        tracing::debug!(%path, relay = %relay, "unix stream connected through the target");
        match socket.connect(&address) {
            Ok(()) => Outcome::Value(0),
            Err(error) => Outcome::Fail(error.raw_os_error().unwrap_or(libc::EIO)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_addresses_survive_the_round_trip_and_ipv4_maps_into_ipv6_sockets() {
        let v4: SocketAddr = "10.1.2.3:8080".parse().unwrap();
        assert_eq!(
            parse_sockaddr(&sockaddr_bytes(v4, libc::AF_INET).unwrap()),
            Some(v4)
        );
        let mapped = parse_sockaddr(&sockaddr_bytes(v4, libc::AF_INET6).unwrap()).unwrap();
        assert_eq!(canonical(mapped), v4);
        let v6: SocketAddr = "[fd00::5]:53".parse().unwrap();
        assert_eq!(
            parse_sockaddr(&sockaddr_bytes(v6, libc::AF_INET6).unwrap()),
            Some(v6)
        );
        assert_eq!(sockaddr_bytes(v6, libc::AF_INET), None);
        assert_eq!(parse_sockaddr(&[1, 0]), None);
    }

    #[test]
    fn unix_paths_are_read_from_file_addresses_only() {
        let mut address = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
        address.extend_from_slice(b"/run/app.sock\0\0");
        assert_eq!(unix_path(&address), Some(&b"/run/app.sock"[..]));
        let abstract_name = [&address[..2], b"\0name"].concat();
        assert_eq!(unix_path(&abstract_name), None);
        assert_eq!(unix_path(&address[..2]), None, "unnamed");
        let v4 = sockaddr_bytes("10.1.2.3:80".parse().unwrap(), libc::AF_INET).unwrap();
        assert_eq!(unix_path(&v4), None);
    }

    #[test]
    fn unix_streams_decide_which_paths_reach_the_target() {
        let mut config = ResolvedConfig::default();
        config.feature.network.outgoing.tcp = false;
        config.feature.network.outgoing.udp = false;
        let none = OutgoingPolicy::new(&config).unwrap();
        assert!(!none.is_enabled());
        assert!(!none.sends_unix(b"/run/app.sock"));
        config.feature.network.outgoing.unix_streams = vec!["^/run/app\\.sock$".into()];
        let some = OutgoingPolicy::new(&config).unwrap();
        assert!(some.is_enabled(), "unix_streams alone needs connect");
        assert!(some.sends_unix(b"/run/app.sock"));
        assert!(!some.sends_unix(b"/run/app.sock.old"));
        config.feature.network.outgoing.unix_streams = vec!["(".into()];
        let error = OutgoingPolicy::new(&config).unwrap_err();
        assert!(error.contains("unix_streams"), "{error}");
    }
}
