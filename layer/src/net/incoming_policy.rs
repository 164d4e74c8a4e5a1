//! The decisions of `feature.network.incoming`, written once for both paths: which listeners
//! receive the target's traffic (`ports`, `ignore_ports`, `ignore_localhost`), which port of the
//! target a local port stands for (`port_mapping`), where a listener really listens
//! (`listen_ports`), and the subscription a port gets (mirror, steal, or steal with an HTTP filter
//! on `http_filter.ports`). The layer uses it from `net/incoming.rs`; the supervisor includes this
//! file by path (`supervisor/src/lib.rs`), so a change here changes both.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use mirrord_config::{
    file::IncomingMode,
    resolved::{self, IncomingConfig},
};
use mirrord_protocol::incoming::{HttpFilter, PortSubscription, SubscriptionMode};

use super::filter::canonical;

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

/// Where the intproxy can reach a socket bound to `bound`: the unspecified address becomes loopback.
pub(crate) fn reachable(bound: SocketAddr) -> SocketAddr {
    let ip = match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    canonical(SocketAddr::new(ip, bound.port()))
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
