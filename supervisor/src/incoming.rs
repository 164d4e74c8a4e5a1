//! Incoming traffic: `listen` on a TCP socket whose port belongs to the target (after
//! `port_mapping`, `ports`, `ignore_ports`, `ignore_localhost`). The program's `bind` runs as is;
//! at `listen` the supervisor takes a copy of the socket, makes it listen itself (so the socket is
//! ready before any connection can be delivered), and subscribes the target's port through the
//! intproxy — mirror, steal, or steal with an HTTP filter — naming where the socket listens. The
//! intproxy connects there for every delivered connection; `accept` is a plain system call.
//!
//! The subscription lives as long as the supervisor's connection to the intproxy (the session).
//! Unlike the layer, `accept` reports the intproxy's loopback end as the peer, and `listen_ports`
//! is not applied (the program listens where it bound).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    os::fd::AsFd,
};

use mirrord_config::{
    file::IncomingMode,
    resolved::{self, IncomingConfig},
};
use mirrord_protocol::{
    LayerRequest, LayerResponse,
    incoming::{HttpFilter, LayerPortSubscription, PortSubscription, SubscriptionMode},
};

use crate::{
    net_filter::canonical,
    remote,
    serve::{Outcome, Worker},
    sys::{self, Notification},
};

/// What `feature.network.incoming` asks for.
#[derive(Debug)]
pub(crate) struct IncomingPolicy {
    mode: IncomingMode,
    filter: Option<HttpFilter>,
    filter_ports: Option<Vec<u16>>,
    port_mapping: Vec<(u16, u16)>,
    ignore_localhost: bool,
    ignore_ports: Vec<u16>,
    ports: Option<Vec<u16>>,
}

impl IncomingPolicy {
    /// `None` when incoming traffic is off.
    pub(crate) fn new(config: &IncomingConfig) -> Option<Self> {
        (config.mode != IncomingMode::Off).then(|| Self {
            mode: config.mode,
            filter: config.http_filter.as_ref().map(protocol_filter),
            filter_ports: config.http_filter_ports.clone(),
            port_mapping: config.port_mapping.clone(),
            ignore_localhost: config.ignore_localhost,
            ignore_ports: config.ignore_ports.clone(),
            ports: config.ports.clone(),
        })
    }

    /// The target's port a listener bound to `local` receives, if any.
    fn target_port(&self, local: SocketAddr) -> Option<u16> {
        let port = local.port();
        let handled = port != 0
            && !self.ignore_ports.contains(&port)
            && !(self.ignore_localhost && canonical(local).ip().is_loopback());
        let target = self
            .port_mapping
            .iter()
            .find(|(from, _)| *from == port)
            .map_or(port, |(_, to)| *to);
        let listed = self
            .ports
            .as_ref()
            .is_none_or(|ports| ports.contains(&port) || ports.contains(&target));
        (handled && listed).then_some(target)
    }

    /// The subscription for the target's `port`.
    fn subscription(&self, port: u16) -> PortSubscription {
        let mode = match self.mode {
            IncomingMode::Mirror | IncomingMode::Off => SubscriptionMode::Mirror,
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
        PortSubscription { port, mode }
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

impl Worker {
    /// `listen(fd, backlog)`.
    pub(crate) fn listen(&mut self, call: &Notification) -> Outcome {
        let [fd, backlog, ..] = call.args;
        let Ok(socket) = sys::take_thread_descriptor(call.pid, fd as i32) else {
            return Outcome::Continue;
        };
        let Ok((domain, kind)) = sys::socket_kind(socket.as_fd()) else {
            return Outcome::Continue;
        };
        if kind != libc::SOCK_STREAM || !matches!(domain, libc::AF_INET | libc::AF_INET6) {
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
        let Some(policy) = self.shared.incoming.as_ref() else {
            return Outcome::Continue;
        };
        let Some(target_port) = policy.target_port(local) else {
            return Outcome::Continue;
        };
        if !self.shared.listener.id_valid(call.id) {
            return Outcome::Gone;
        }
        if let Err(error) = sys::listen(socket.as_fd(), backlog as i32) {
            return Outcome::Fail(error.raw_os_error().unwrap_or(libc::EIO));
        }
        let listening_on = match local.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => {
                SocketAddr::new(Ipv4Addr::LOCALHOST.into(), local.port())
            }
            IpAddr::V6(ip) if ip.is_unspecified() => {
                SocketAddr::new(Ipv6Addr::LOCALHOST.into(), local.port())
            }
            _ => local,
        };
        let subscription = LayerPortSubscription {
            subscription: policy.subscription(target_port),
            listening_on,
        };
        match self
            .remote
            .request(LayerRequest::PortSubscribe(subscription))
        {
            Ok(LayerResponse::PortSubscribed) => Outcome::Value(0),
            Ok(LayerResponse::PortSubscribedWithWarning(warning)) => {
                tracing::warn!(port = target_port, %warning, "subscribed with a warning");
                Outcome::Value(0)
            }
            Ok(other) => Outcome::Fail(remote::unexpected(&other).errno()),
            Err(error) => {
                tracing::warn!(%error, port = target_port, "cannot receive the target's port");
                Outcome::Fail(error.errno())
            }
        }
    }
}
