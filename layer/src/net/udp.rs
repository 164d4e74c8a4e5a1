//! Bookkeeping of one socket's relayed traffic: for a UDP socket, which intproxy relay stands for which
//! remote destination (one relay per distinct destination); for a connected socket, its remote peer.
//! Addresses are compared in canonical form (an IPv4-mapped IPv6 address is its IPv4 address), because an
//! `AF_INET6` socket reports IPv4 peers that way.

use std::{collections::BTreeMap, net::SocketAddr};

use super::filter::canonical;

/// A socket connected through the intproxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Connected {
    /// What the user program connected to (reported by `getpeername`).
    pub(crate) remote: SocketAddr,
    /// The agent socket's own address (reported by `getsockname`).
    pub(crate) agent_local: SocketAddr,
    /// The intproxy address the socket really is connected to.
    pub(crate) relay: SocketAddr,
}

/// What the layer knows about one managed socket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SocketState {
    /// Set when `connect` went through the intproxy, or `accept` returned a delivered connection.
    pub(crate) connected: Option<Connected>,
    /// Set when `bind` made the socket a listener of the target's port.
    pub(crate) listener: Option<super::incoming::Listener>,
    /// Set when the socket listens locally (not for the target), for loopback `connect`s.
    pub(crate) local_listener: Option<super::LocalListen>,
    /// The `sockaddr_un` of the target's socket a relayed unix stream is connected to (reported
    /// by `getpeername` instead of the relay's path).
    pub(crate) unix_peer: Option<Vec<u8>>,
    /// Destination → relay, for datagrams sent with an address.
    relays: BTreeMap<SocketAddr, SocketAddr>,
    /// Relay → destination, to translate the sources of received datagrams back.
    destinations: BTreeMap<SocketAddr, SocketAddr>,
}

impl SocketState {
    /// The relay already used for `destination`, if any.
    pub(crate) fn relay_for(&self, destination: SocketAddr) -> Option<SocketAddr> {
        self.relays.get(&canonical(destination)).copied()
    }

    /// Remembers that datagrams for `destination` go to `relay`.
    pub(crate) fn add_relay(&mut self, destination: SocketAddr, relay: SocketAddr) {
        let destination = canonical(destination);
        let relay = canonical(relay);
        if let Some(previous) = self.relays.insert(destination, relay) {
            self.destinations.remove(&previous);
        }
        self.destinations.insert(relay, destination);
    }

    /// The remote address a datagram from `source` (an intproxy relay) really came from.
    pub(crate) fn remote_source(&self, source: SocketAddr) -> Option<SocketAddr> {
        let source = canonical(source);
        if let Some(connected) = &self.connected
            && canonical(connected.relay) == source
        {
            return Some(connected.remote);
        }
        self.destinations.get(&source).copied()
    }

    /// How many relays the socket uses.
    #[cfg(test)]
    pub(crate) fn relay_count(&self) -> usize {
        self.relays.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn one_relay_per_destination_and_translation_back() {
        let mut state = SocketState::default();
        assert_eq!(state.relay_for(address("10.0.0.1:53")), None);
        state.add_relay(address("10.0.0.1:53"), address("127.0.0.1:40001"));
        state.add_relay(address("10.0.0.2:53"), address("127.0.0.1:40002"));
        assert_eq!(
            state.relay_for(address("10.0.0.1:53")),
            Some(address("127.0.0.1:40001"))
        );
        assert_eq!(state.relay_count(), 2);
        assert_eq!(
            state.remote_source(address("127.0.0.1:40002")),
            Some(address("10.0.0.2:53"))
        );
        assert_eq!(state.remote_source(address("127.0.0.1:9")), None);
    }

    #[test]
    fn mapped_addresses_are_the_same_destination() {
        let mut state = SocketState::default();
        state.add_relay(address("[::ffff:10.0.0.1]:53"), address("127.0.0.1:40001"));
        assert_eq!(
            state.relay_for(address("10.0.0.1:53")),
            Some(address("127.0.0.1:40001"))
        );
        assert_eq!(
            state.remote_source(address("[::ffff:127.0.0.1]:40001")),
            Some(address("10.0.0.1:53"))
        );
    }

    #[test]
    fn a_replaced_relay_no_longer_translates() {
        let mut state = SocketState::default();
        state.add_relay(address("10.0.0.1:53"), address("127.0.0.1:40001"));
        state.add_relay(address("10.0.0.1:53"), address("127.0.0.1:40009"));
        assert_eq!(state.remote_source(address("127.0.0.1:40001")), None);
        assert_eq!(
            state.remote_source(address("127.0.0.1:40009")),
            Some(address("10.0.0.1:53"))
        );
    }

    #[test]
    fn a_connected_socket_translates_its_relay() {
        let state = SocketState {
            connected: Some(Connected {
                remote: address("10.242.0.2:7"),
                agent_local: address("10.242.0.9:40000"),
                relay: address("127.0.0.1:5555"),
            }),
            ..SocketState::default()
        };
        assert_eq!(
            state.remote_source(address("127.0.0.1:5555")),
            Some(address("10.242.0.2:7"))
        );
    }
}
