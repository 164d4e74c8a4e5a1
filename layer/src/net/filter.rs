//! Address filters of `feature.network.outgoing.filter` and `feature.network.dns.filter`: which
//! destinations (or names) go through the target.
//!
//! An entry is `[tcp://|udp://][name|address|subnet/mask][:port]`: `:53`, `10.0.0.0/8`,
//! `tcp://db.internal:5432`, `[::1]:80`, `localhost`. A `remote` filter sends only matching destinations
//! through the target; a `local` filter keeps matching ones local and sends the rest.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
};

use mirrord_config::resolved::ResolvedAddressFilter;

/// TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// Stream sockets.
    Tcp,
    /// Datagram sockets.
    Udp,
}

/// The host part of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Any,
    Address(IpAddr),
    Subnet { network: IpAddr, prefix: u8 },
    Name(String),
}

/// One filter entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FilterEntry {
    protocol: Option<Protocol>,
    host: Host,
    port: Option<u16>,
}

/// Why an entry does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FilterError {
    entry: String,
    reason: &'static str,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.entry, self.reason)
    }
}

impl std::error::Error for FilterError {}

/// A compiled filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AddressFilter {
    /// Only matching destinations go through the target.
    Remote(Vec<FilterEntry>),
    /// Matching destinations stay local; the rest go through the target.
    Local(Vec<FilterEntry>),
}

impl AddressFilter {
    /// Parses the config's entries.
    pub(crate) fn new(filter: &ResolvedAddressFilter) -> Result<Self, FilterError> {
        let parse = |entries: &[String]| -> Result<Vec<FilterEntry>, FilterError> {
            entries
                .iter()
                .map(|entry| FilterEntry::parse(entry))
                .collect()
        };
        Ok(match filter {
            ResolvedAddressFilter::Remote(entries) => Self::Remote(parse(entries)?),
            ResolvedAddressFilter::Local(entries) => Self::Local(parse(entries)?),
        })
    }

    /// Whether a connection to `address` goes through the target. `resolve` turns a name entry into
    /// addresses (asked only when such an entry is reached).
    pub(crate) fn sends_address(
        &self,
        protocol: Protocol,
        address: SocketAddr,
        resolve: &dyn Fn(&str) -> Vec<IpAddr>,
    ) -> bool {
        let matches = |entries: &[FilterEntry]| {
            entries
                .iter()
                .any(|entry| entry.matches_address(protocol, address, resolve))
        };
        match self {
            Self::Remote(entries) => matches(entries),
            Self::Local(entries) => !matches(entries),
        }
    }

    /// Whether resolving `name` (for `port`, when known) goes through the target.
    pub(crate) fn sends_name(&self, name: &str, port: Option<u16>) -> bool {
        let matches =
            |entries: &[FilterEntry]| entries.iter().any(|entry| entry.matches_name(name, port));
        match self {
            Self::Remote(entries) => matches(entries),
            Self::Local(entries) => !matches(entries),
        }
    }
}

impl FilterEntry {
    /// Parses `[tcp://|udp://][host][:port]`.
    pub(crate) fn parse(text: &str) -> Result<Self, FilterError> {
        let error = |reason| FilterError {
            entry: text.to_owned(),
            reason,
        };
        let trimmed = text.trim();
        let (protocol, rest) = if let Some(rest) = trimmed.strip_prefix("tcp://") {
            (Some(Protocol::Tcp), rest)
        } else if let Some(rest) = trimmed.strip_prefix("udp://") {
            (Some(Protocol::Udp), rest)
        } else {
            (None, trimmed)
        };
        let parse_port = |port: &str| port.parse::<u16>().map_err(|_| error("invalid port"));
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (inside, after) = bracketed.split_once(']').ok_or(error("missing `]`"))?;
            let (mask, port) = match after.split_once(':') {
                Some((mask, port)) => (mask, Some(parse_port(port)?)),
                None => (after, None),
            };
            (format!("{inside}{mask}"), port)
        } else if rest.matches(':').count() > 1 {
            // A bare IPv6 address (or subnet), without a port.
            (rest.to_owned(), None)
        } else {
            match rest.split_once(':') {
                Some((host, port)) => (host.to_owned(), Some(parse_port(port)?)),
                None => (rest.to_owned(), None),
            }
        };
        Ok(Self {
            protocol,
            host: Host::parse(&host).ok_or(error("invalid address or subnet"))?,
            port,
        })
    }

    fn matches_address(
        &self,
        protocol: Protocol,
        address: SocketAddr,
        resolve: &dyn Fn(&str) -> Vec<IpAddr>,
    ) -> bool {
        if self.protocol.is_some_and(|wanted| wanted != protocol)
            || self.port.is_some_and(|port| port != address.port())
        {
            return false;
        }
        let ip = canonical_ip(address.ip());
        match &self.host {
            Host::Any => true,
            Host::Address(wanted) => canonical_ip(*wanted) == ip,
            Host::Subnet { network, prefix } => in_subnet(ip, *network, *prefix),
            Host::Name(name) => resolve(name)
                .into_iter()
                .any(|resolved| canonical_ip(resolved) == ip),
        }
    }

    /// A port-only entry matches a name only when the query's port is known and equal; a name entry
    /// with a port matches its name unless the query's port is known and different.
    fn matches_name(&self, name: &str, port: Option<u16>) -> bool {
        match &self.host {
            Host::Any => match (self.port, port) {
                (None, _) => true,
                (Some(wanted), Some(port)) => wanted == port,
                (Some(_), None) => false,
            },
            Host::Name(wanted) => {
                wanted.eq_ignore_ascii_case(name.trim_end_matches('.'))
                    && !matches!((self.port, port), (Some(wanted), Some(port)) if wanted != port)
            }
            Host::Address(_) | Host::Subnet { .. } => false,
        }
    }
}

impl Host {
    fn parse(text: &str) -> Option<Self> {
        if text.is_empty() {
            return Some(Self::Any);
        }
        if let Some((network, prefix)) = text.split_once('/') {
            let network: IpAddr = network.parse().ok()?;
            let prefix: u8 = prefix.parse().ok()?;
            let bits = if network.is_ipv4() { 32 } else { 128 };
            return (prefix <= bits).then_some(Self::Subnet { network, prefix });
        }
        if let Ok(address) = text.parse::<IpAddr>() {
            return Some(Self::Address(address));
        }
        let valid_name = text
            .chars()
            .all(|char| char.is_ascii_alphanumeric() || matches!(char, '-' | '.' | '_'));
        valid_name.then(|| Self::Name(text.trim_end_matches('.').to_owned()))
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is; other addresses unchanged.
pub(crate) fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// `address` with its IP made canonical.
pub(crate) fn canonical(address: SocketAddr) -> SocketAddr {
    SocketAddr::new(canonical_ip(address.ip()), address.port())
}

fn in_subnet(ip: IpAddr, network: IpAddr, prefix: u8) -> bool {
    match (ip, canonical_ip(network)) {
        (IpAddr::V4(ip), IpAddr::V4(network)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(network) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(network)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(network) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(local: bool, entries: &[&str]) -> AddressFilter {
        let entries = entries.iter().map(|entry| (*entry).to_owned()).collect();
        AddressFilter::new(&if local {
            ResolvedAddressFilter::Local(entries)
        } else {
            ResolvedAddressFilter::Remote(entries)
        })
        .unwrap()
    }

    fn no_names(_: &str) -> Vec<IpAddr> {
        Vec::new()
    }

    fn address(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn entries_parse_in_every_documented_shape() {
        for entry in [
            ":53",
            "10.0.0.0/8",
            "tcp://1.1.1.1:80",
            "udp://:53",
            "db.internal:5432",
            "localhost",
            "[::1]:80",
            "[fd00::]/8",
            "fd00::1",
            "fd00::/16",
            "",
        ] {
            assert!(FilterEntry::parse(entry).is_ok(), "{entry}");
        }
        for entry in ["10.0.0.0/40", "x:port", "[::1", "bad name!"] {
            assert!(FilterEntry::parse(entry).is_err(), "{entry}");
        }
    }

    #[test]
    fn local_filter_keeps_matches_local() {
        let filter = filter(true, &[":53", "10.0.0.0/8", "tcp://1.1.1.1:80"]);
        let sends = |protocol, text| filter.sends_address(protocol, address(text), &no_names);
        assert!(!sends(Protocol::Udp, "8.8.8.8:53"));
        assert!(!sends(Protocol::Tcp, "10.1.2.3:443"));
        assert!(!sends(Protocol::Tcp, "1.1.1.1:80"));
        assert!(sends(Protocol::Udp, "1.1.1.1:80"));
        assert!(sends(Protocol::Tcp, "11.0.0.1:443"));
        assert!(
            !sends(Protocol::Tcp, "[::ffff:10.0.0.7]:443"),
            "mapped addresses are IPv4"
        );
    }

    #[test]
    fn remote_filter_sends_only_matches() {
        let filter = filter(false, &["db.internal:5432", "[fd00::]/8"]);
        let resolve = |name: &str| {
            assert_eq!(name, "db.internal");
            vec!["10.9.9.9".parse().unwrap()]
        };
        assert!(filter.sends_address(Protocol::Tcp, address("10.9.9.9:5432"), &resolve));
        assert!(!filter.sends_address(Protocol::Tcp, address("10.9.9.9:80"), &resolve));
        assert!(filter.sends_address(Protocol::Tcp, address("[fd12::1]:80"), &resolve));
        assert!(!filter.sends_address(Protocol::Tcp, address("[fe80::1]:80"), &resolve));
    }

    #[test]
    fn names_match_names_and_ports() {
        let filter = filter(true, &["localhost", "Internal.Corp", ":53"]);
        assert!(!filter.sends_name("localhost", None));
        assert!(!filter.sends_name("internal.corp.", Some(443)));
        assert!(filter.sends_name("db.sandbox.svc", Some(80)));
        assert!(!filter.sends_name("db.sandbox.svc", Some(53)));
        let filter = filter_remote_names();
        assert!(filter.sends_name("db.sandbox.svc", None));
        assert!(!filter.sends_name("example.com", None));
    }

    fn filter_remote_names() -> AddressFilter {
        filter(false, &["db.sandbox.svc", "10.0.0.0/8"])
    }
}
