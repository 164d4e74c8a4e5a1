//! Incoming traffic: port subscriptions (mirror or steal, optionally only HTTP requests that match a filter)
//! and the connections the agent delivers for them.
//!
//! Under an HTTP filter the agent delivers matching requests on connections of their own (HTTP/1.1; the
//! matching requests of one remote connection share one delivered connection, keep-alive, and an upgrade
//! request gets one to itself): what the client writes back are those requests' responses. Requests that do
//! not match keep going to the target's own service.

use std::{fmt, net::SocketAddr};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de, ser};

use crate::ids::ConnectionId;

/// The deepest [`HttpFilter`] the protocol carries. Decoding checks it, so that a hostile frame cannot nest
/// filters until the stack overflows.
pub const MAX_FILTER_DEPTH: usize = 16;

/// Subscribe to a port of the target → `PortSubscribed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSubscription {
    /// The target's port.
    pub port: u16,
    /// What to do with its traffic.
    pub mode: SubscriptionMode,
}

/// What a subscription does with the traffic to the port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubscriptionMode {
    /// The target still answers; the client gets a copy of each connection's incoming bytes (what it writes
    /// back is dropped).
    Mirror,
    /// Every connection goes to the client instead of the target.
    Steal,
    /// Only HTTP requests matching the filter go to the client; the rest reach the target.
    StealHttp(HttpFilter),
    /// [`Steal`](Self::Steal), for a client on the agent's machine that takes each connection's
    /// socket itself: the agent announces the connection as for `Steal` but reads nothing from it
    /// and keeps its socket for `FdRequest::TakeIncoming` on the descriptor socket
    /// ([`fd_channel`](crate::fd_channel)). A connection not taken within a few seconds, or whose
    /// client sends data or a shutdown for it first, is relayed as under `Steal`; one whose client
    /// closes it first is closed. An agent without a descriptor socket treats this as `Steal`.
    StealHandover,
}

/// Which HTTP requests to steal. Regexes use the syntax of the `regex` crate, matched unanchored (use `^`
/// and `$` to anchor).
///
/// On the wire a filter is a flat list in post-order (children before their parent), so decoding never
/// recurses; filters nested deeper than [`MAX_FILTER_DEPTH`] are rejected on both ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpFilter {
    /// A header line, as `Name: value`, matches the regex.
    Header(String),
    /// The request path (with the query string) matches the regex.
    Path(String),
    /// The method (`GET`, `POST`, ...) matches the regex.
    Method(String),
    /// Every filter matches (true when empty).
    AllOf(Vec<HttpFilter>),
    /// At least one filter matches (false when empty).
    AnyOf(Vec<HttpFilter>),
}

impl HttpFilter {
    /// How deep the filter nests: 1 for a single condition.
    pub fn depth(&self) -> usize {
        let mut deepest = 0;
        let mut pending = vec![(self, 1)];
        while let Some((filter, depth)) = pending.pop() {
            deepest = deepest.max(depth);
            if let Self::AllOf(children) | Self::AnyOf(children) = filter {
                pending.extend(children.iter().map(|child| (child, depth + 1)));
            }
        }
        deepest
    }
}

/// One node of a filter's wire form.
#[derive(Serialize, Deserialize)]
enum FilterNode {
    Header(String),
    Path(String),
    Method(String),
    /// Combine the last `n` filters.
    AllOf(u32),
    /// Combine the last `n` filters.
    AnyOf(u32),
}

/// Why a filter cannot travel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum FilterWireError {
    #[error("http filter nests deeper than {MAX_FILTER_DEPTH} levels")]
    TooDeep,
    #[error("http filter has more than {} conditions in one group", u32::MAX)]
    TooWide,
    #[error("malformed http filter: a group refers to more filters than precede it")]
    MissingOperand,
    #[error("malformed http filter: expected exactly one filter, found {0}")]
    NotOneRoot(usize),
}

impl HttpFilter {
    /// The post-order node list of the filter.
    fn to_nodes(&self) -> Result<Vec<FilterNode>, FilterWireError> {
        if self.depth() > MAX_FILTER_DEPTH {
            return Err(FilterWireError::TooDeep);
        }
        let mut nodes = Vec::new();
        self.push_nodes(&mut nodes)?;
        Ok(nodes)
    }

    /// Recursion here is bounded by the depth check in [`HttpFilter::to_nodes`].
    fn push_nodes(&self, nodes: &mut Vec<FilterNode>) -> Result<(), FilterWireError> {
        match self {
            Self::Header(regex) => nodes.push(FilterNode::Header(regex.clone())),
            Self::Path(regex) => nodes.push(FilterNode::Path(regex.clone())),
            Self::Method(regex) => nodes.push(FilterNode::Method(regex.clone())),
            Self::AllOf(children) | Self::AnyOf(children) => {
                for child in children {
                    child.push_nodes(nodes)?;
                }
                let count = u32::try_from(children.len()).map_err(|_| FilterWireError::TooWide)?;
                nodes.push(match self {
                    Self::AllOf(_) => FilterNode::AllOf(count),
                    _ => FilterNode::AnyOf(count),
                });
            }
        }
        Ok(())
    }

    /// Rebuilds a filter from its post-order node list, without recursion.
    fn from_nodes(nodes: Vec<FilterNode>) -> Result<Self, FilterWireError> {
        // Each finished subtree with its depth.
        let mut stack: Vec<(Self, usize)> = Vec::new();
        for node in nodes {
            let (filter, depth) = match node {
                FilterNode::Header(regex) => (Self::Header(regex), 1),
                FilterNode::Path(regex) => (Self::Path(regex), 1),
                FilterNode::Method(regex) => (Self::Method(regex), 1),
                FilterNode::AllOf(count) | FilterNode::AnyOf(count) => {
                    let count = usize::try_from(count).map_err(|_| FilterWireError::TooWide)?;
                    let first = stack
                        .len()
                        .checked_sub(count)
                        .ok_or(FilterWireError::MissingOperand)?;
                    let children = stack.split_off(first);
                    let depth = 1 + children.iter().map(|(_, depth)| *depth).max().unwrap_or(0);
                    let children = children.into_iter().map(|(child, _)| child).collect();
                    match node {
                        FilterNode::AllOf(_) => (Self::AllOf(children), depth),
                        _ => (Self::AnyOf(children), depth),
                    }
                }
            };
            if depth > MAX_FILTER_DEPTH {
                return Err(FilterWireError::TooDeep);
            }
            stack.push((filter, depth));
        }
        if stack.len() != 1 {
            return Err(FilterWireError::NotOneRoot(stack.len()));
        }
        Ok(stack.remove(0).0)
    }
}

impl Serialize for HttpFilter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_nodes()
            .map_err(ser::Error::custom)?
            .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for HttpFilter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let nodes = Vec::<FilterNode>::deserialize(deserializer)?;
        Self::from_nodes(nodes).map_err(de::Error::custom)
    }
}

impl fmt::Display for HttpFilter {
    /// A compact one-line form for logs, such as `all_of(method(^GET$), path(^/api))`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header(regex) => write!(f, "header({regex})"),
            Self::Path(regex) => write!(f, "path({regex})"),
            Self::Method(regex) => write!(f, "method({regex})"),
            Self::AllOf(children) | Self::AnyOf(children) => {
                f.write_str(if matches!(self, Self::AllOf(_)) {
                    "all_of("
                } else {
                    "any_of("
                })?;
                for (index, child) in children.iter().enumerate() {
                    if index > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{child}")?;
                }
                f.write_str(")")
            }
        }
    }
}

/// Agent → client: a connection arrived at a subscribed port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewIncomingConnection {
    /// Names the connection in later data and close messages.
    pub connection_id: ConnectionId,
    /// The peer that connected (what `accept`/`getpeername` in the user process should report).
    pub remote_peer: SocketAddr,
    /// The target's address the peer connected to.
    pub destination: SocketAddr,
    /// The subscribed port it arrived on.
    pub port: u16,
}

/// Layer channel: the user process listens on `listening_on` and wants the target's traffic to
/// `subscription.port` → `PortSubscribed`. The intproxy subscribes through the agent and, for every
/// connection, connects to `listening_on` and relays the bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerPortSubscription {
    /// The target's port and the mode.
    pub subscription: PortSubscription,
    /// The address the user process's socket really listens on.
    pub listening_on: SocketAddr,
}

/// Layer channel: stop receiving the traffic to a target port → `PortUnsubscribed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerPortUnsubscription {
    /// The target's port.
    pub port: u16,
    /// The listener the subscription delivered to.
    pub listening_on: SocketAddr,
}

/// Layer channel: the user process accepted a connection whose peer is the intproxy's socket
/// `intproxy_addr` and wants the real peer → [`IncomingConnectionInfo`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingConnectionInfoRequest {
    /// The peer address `accept` returned (the intproxy's end of the relayed connection).
    pub intproxy_addr: SocketAddr,
}

/// Layer channel: who is really on the other end of an accepted connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingConnectionInfo {
    /// The peer that connected to the target.
    pub remote_peer: SocketAddr,
    /// The target's address the peer connected to.
    pub destination: SocketAddr,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> HttpFilter {
        let mut filter = HttpFilter::Path("^/".into());
        for _ in 1..depth {
            filter = HttpFilter::AllOf(vec![filter]);
        }
        filter
    }

    #[test]
    fn filters_round_trip() {
        let filter = HttpFilter::AnyOf(vec![
            HttpFilter::AllOf(vec![
                HttpFilter::Method("^GET$".into()),
                HttpFilter::Path("^/api/".into()),
            ]),
            HttpFilter::Header("^x-user: alice$".into()),
            HttpFilter::AllOf(vec![]),
            HttpFilter::AnyOf(vec![]),
        ]);
        assert_eq!(filter.depth(), 3);
        let encoded = postcard::to_stdvec(&filter).unwrap();
        assert_eq!(
            postcard::from_bytes::<HttpFilter>(&encoded).unwrap(),
            filter
        );
        assert_eq!(
            filter.to_string(),
            "any_of(all_of(method(^GET$), path(^/api/)), header(^x-user: alice$), all_of(), any_of())"
        );
    }

    #[test]
    fn depth_limit_holds_on_both_ends() {
        let deepest = nested(MAX_FILTER_DEPTH);
        let encoded = postcard::to_stdvec(&deepest).unwrap();
        assert_eq!(
            postcard::from_bytes::<HttpFilter>(&encoded).unwrap(),
            deepest
        );
        assert!(postcard::to_stdvec(&nested(MAX_FILTER_DEPTH + 1)).is_err());
    }

    /// A hostile peer could otherwise nest a million groups in a few megabytes and overflow the stack.
    #[test]
    fn deep_nesting_from_the_wire_is_rejected_without_recursion() {
        let mut nodes = vec![FilterNode::Path("x".into())];
        nodes.extend((0..1_000_000).map(|_| FilterNode::AllOf(1)));
        let encoded = postcard::to_stdvec(&nodes).unwrap();
        assert!(postcard::from_bytes::<HttpFilter>(&encoded).is_err());
    }

    #[test]
    fn malformed_node_lists_are_rejected() {
        let check = |nodes: Vec<FilterNode>, expected: FilterWireError| {
            assert_eq!(HttpFilter::from_nodes(nodes).unwrap_err(), expected);
        };
        check(
            vec![FilterNode::AnyOf(2), FilterNode::Path("x".into())],
            FilterWireError::MissingOperand,
        );
        check(vec![], FilterWireError::NotOneRoot(0));
        check(
            vec![
                FilterNode::Path("x".into()),
                FilterNode::Method("GET".into()),
            ],
            FilterWireError::NotOneRoot(2),
        );
    }
}
