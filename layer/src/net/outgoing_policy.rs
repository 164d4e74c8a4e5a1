//! Where an outgoing connection goes: the decision of `feature.network.outgoing` (filters,
//! loopback, unix streams, IPv6) for one destination, without any I/O of its own.

use std::net::{IpAddr, SocketAddr};

use mirrord_config::resolved::NetworkConfig;
use regex::bytes::RegexSet;

use super::filter::{AddressFilter, Protocol, canonical};

/// What `feature.network.outgoing` (with `network.ipv6` and `incoming.ignore_ports`) asks for.
#[derive(Debug)]
pub(crate) struct OutgoingPolicy {
    tcp: bool,
    udp: bool,
    ignore_localhost: bool,
    ipv6: bool,
    /// Loopback ports that always stay local (`incoming.ignore_ports`: the debugger's).
    local_ports: Vec<u16>,
    filter: Option<AddressFilter>,
    unix_streams: Option<RegexSet>,
    intproxy: SocketAddr,
}

/// Where a connection goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// Stays on this machine.
    Local,
    /// Through the target.
    Remote,
    /// The target's loopback, unless a listener of the session has the port.
    Loopback,
}

impl OutgoingPolicy {
    /// Compiles the config (the filter's entries and the unix regexes are parsed once). The error
    /// names the key.
    pub(crate) fn new(config: &NetworkConfig, intproxy: SocketAddr) -> Result<Self, String> {
        let outgoing = &config.outgoing;
        let filter = outgoing
            .filter
            .as_ref()
            .map(AddressFilter::new)
            .transpose()
            .map_err(|error| format!("feature.network.outgoing.filter: {error}"))?;
        let unix_streams = if outgoing.unix_streams.is_empty() {
            None
        } else {
            Some(
                RegexSet::new(&outgoing.unix_streams)
                    .map_err(|error| format!("feature.network.outgoing.unix_streams: {error}"))?,
            )
        };
        Ok(Self {
            tcp: outgoing.tcp,
            udp: outgoing.udp,
            ignore_localhost: outgoing.ignore_localhost,
            ipv6: config.ipv6,
            local_ports: config.incoming.ignore_ports.clone(),
            filter,
            unix_streams,
            intproxy,
        })
    }

    /// Whether any outgoing traffic goes through the target.
    pub(crate) fn is_enabled(&self) -> bool {
        self.tcp || self.udp || self.unix_streams.is_some()
    }

    /// Whether `connect` must see listeners opened locally (loopback can go to the target).
    pub(crate) fn tracks_local_listeners(&self) -> bool {
        self.tcp && !self.ignore_localhost
    }

    /// Whether a unix stream `connect` to `path` goes to the target's socket.
    pub(crate) fn sends_unix(&self, path: &[u8]) -> bool {
        self.unix_streams
            .as_ref()
            .is_some_and(|set| set.is_match(path))
    }

    /// Where traffic of `protocol` to `destination` goes.
    pub(crate) fn route(
        &self,
        protocol: Protocol,
        destination: SocketAddr,
        resolve: &dyn Fn(&str) -> Vec<IpAddr>,
    ) -> Route {
        let enabled = match protocol {
            Protocol::Tcp => self.tcp,
            Protocol::Udp => self.udp,
        };
        let destination = canonical(destination);
        let ip = destination.ip();
        if !enabled
            || ip.is_unspecified()
            || destination == canonical(self.intproxy)
            || (ip.is_ipv6() && !self.ipv6)
        {
            return Route::Local;
        }
        let filtered_out = || {
            self.filter
                .as_ref()
                .is_some_and(|filter| !filter.sends_address(protocol, destination, resolve))
        };
        if ip.is_loopback() {
            if self.ignore_localhost
                || self.local_ports.contains(&destination.port())
                || filtered_out()
            {
                return Route::Local;
            }
            return Route::Loopback;
        }
        if filtered_out() {
            Route::Local
        } else {
            Route::Remote
        }
    }

    /// Whether traffic of `protocol` to `destination` goes through the target (for datagrams,
    /// loopback included: no local listener is tracked for them).
    pub(crate) fn sends(
        &self,
        protocol: Protocol,
        destination: SocketAddr,
        resolve: &dyn Fn(&str) -> Vec<IpAddr>,
    ) -> bool {
        self.route(protocol, destination, resolve) != Route::Local
    }
}
