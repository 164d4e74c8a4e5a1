//! DNS: `getaddrinfo` answered by the target's resolver, and the target's hostname.
//!
//! The hints travel as portable values; [`AddressFamily`], [`SocketType`] and [`AddrInfoFlags`] convert from
//! and to this platform's numbers for the layer and the agent.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// An address family hint or result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AddressFamily {
    /// `AF_UNSPEC`: any.
    #[default]
    Unspecified,
    /// `AF_INET`: IPv4.
    Inet,
    /// `AF_INET6`: IPv6.
    Inet6,
}

impl AddressFamily {
    /// Reads this platform's `AF_*` value; families other than these three give `None`.
    pub fn from_raw(family: i32) -> Option<Self> {
        match family {
            libc::AF_UNSPEC => Some(Self::Unspecified),
            libc::AF_INET => Some(Self::Inet),
            libc::AF_INET6 => Some(Self::Inet6),
            _ => None,
        }
    }

    /// This platform's `AF_*` value.
    pub fn to_raw(self) -> i32 {
        match self {
            Self::Unspecified => libc::AF_UNSPEC,
            Self::Inet => libc::AF_INET,
            Self::Inet6 => libc::AF_INET6,
        }
    }

    /// The family of an address.
    pub fn of(address: &SocketAddr) -> Self {
        match address {
            SocketAddr::V4(_) => Self::Inet,
            SocketAddr::V6(_) => Self::Inet6,
        }
    }
}

/// A socket type hint or result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SocketType {
    /// `0`: any.
    #[default]
    Any,
    /// `SOCK_STREAM`.
    Stream,
    /// `SOCK_DGRAM`.
    Datagram,
    /// `SOCK_RAW`.
    Raw,
    /// `SOCK_SEQPACKET`.
    SeqPacket,
}

impl SocketType {
    /// Reads this platform's `SOCK_*` value (flags such as `SOCK_NONBLOCK` are ignored); unknown types give
    /// `None`.
    pub fn from_raw(socket_type: i32) -> Option<Self> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let socket_type = socket_type & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC);
        match socket_type {
            0 => Some(Self::Any),
            libc::SOCK_STREAM => Some(Self::Stream),
            libc::SOCK_DGRAM => Some(Self::Datagram),
            libc::SOCK_RAW => Some(Self::Raw),
            libc::SOCK_SEQPACKET => Some(Self::SeqPacket),
            _ => None,
        }
    }

    /// This platform's `SOCK_*` value.
    pub fn to_raw(self) -> i32 {
        match self {
            Self::Any => 0,
            Self::Stream => libc::SOCK_STREAM,
            Self::Datagram => libc::SOCK_DGRAM,
            Self::Raw => libc::SOCK_RAW,
            Self::SeqPacket => libc::SOCK_SEQPACKET,
        }
    }
}

/// `getaddrinfo` `ai_flags` without platform numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AddrInfoFlags {
    /// `AI_PASSIVE`.
    pub passive: bool,
    /// `AI_CANONNAME`.
    pub canonical_name: bool,
    /// `AI_NUMERICHOST`.
    pub numeric_host: bool,
    /// `AI_NUMERICSERV`.
    pub numeric_service: bool,
    /// `AI_V4MAPPED`.
    pub v4_mapped: bool,
    /// `AI_ALL`.
    pub all: bool,
    /// `AI_ADDRCONFIG`.
    pub addr_config: bool,
}

impl AddrInfoFlags {
    /// Reads this platform's `AI_*` bits; unknown bits are dropped.
    pub fn from_raw(flags: i32) -> Self {
        Self {
            passive: flags & libc::AI_PASSIVE != 0,
            canonical_name: flags & libc::AI_CANONNAME != 0,
            numeric_host: flags & libc::AI_NUMERICHOST != 0,
            numeric_service: flags & libc::AI_NUMERICSERV != 0,
            v4_mapped: flags & libc::AI_V4MAPPED != 0,
            all: flags & libc::AI_ALL != 0,
            addr_config: flags & libc::AI_ADDRCONFIG != 0,
        }
    }

    /// This platform's `AI_*` bits.
    pub fn to_raw(self) -> i32 {
        [
            (self.passive, libc::AI_PASSIVE),
            (self.canonical_name, libc::AI_CANONNAME),
            (self.numeric_host, libc::AI_NUMERICHOST),
            (self.numeric_service, libc::AI_NUMERICSERV),
            (self.v4_mapped, libc::AI_V4MAPPED),
            (self.all, libc::AI_ALL),
            (self.addr_config, libc::AI_ADDRCONFIG),
        ]
        .into_iter()
        .filter(|(set, _)| *set)
        .fold(0, |flags, (_, bit)| flags | bit)
    }
}

/// `getaddrinfo(node, service, hints)` run by the target's resolver → a list of [`AddrInfo`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetAddrInfoRequest {
    /// The host name or numeric address; `None` for the local host or a wildcard address.
    pub node: Option<String>,
    /// The service name or port number.
    pub service: Option<String>,
    /// `ai_family` hint.
    pub family: AddressFamily,
    /// `ai_socktype` hint.
    pub socket_type: SocketType,
    /// `ai_protocol` hint (`IPPROTO_*`, 0 for any).
    pub protocol: i32,
    /// `ai_flags` hint.
    pub flags: AddrInfoFlags,
}

/// One `struct addrinfo` of a `getaddrinfo` answer. The family is that of `address`
/// ([`AddrInfo::family`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AddrInfo {
    /// `ai_socktype`.
    pub socket_type: SocketType,
    /// `ai_protocol`.
    pub protocol: i32,
    /// `ai_addr`, with the port of the service.
    pub address: SocketAddr,
    /// `ai_canonname`, only on the first entry and only with `AI_CANONNAME`.
    pub canonical_name: Option<String>,
}

impl AddrInfo {
    /// `ai_family`.
    pub fn family(&self) -> AddressFamily {
        AddressFamily::of(&self.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_hint_values_round_trip() {
        for family in [
            AddressFamily::Unspecified,
            AddressFamily::Inet,
            AddressFamily::Inet6,
        ] {
            assert_eq!(AddressFamily::from_raw(family.to_raw()), Some(family));
        }
        for socket_type in [
            SocketType::Any,
            SocketType::Stream,
            SocketType::Datagram,
            SocketType::Raw,
            SocketType::SeqPacket,
        ] {
            assert_eq!(
                SocketType::from_raw(socket_type.to_raw()),
                Some(socket_type)
            );
        }
        let flags = AddrInfoFlags {
            canonical_name: true,
            addr_config: true,
            ..AddrInfoFlags::default()
        };
        assert_eq!(flags.to_raw(), libc::AI_CANONNAME | libc::AI_ADDRCONFIG);
        assert_eq!(AddrInfoFlags::from_raw(flags.to_raw()), flags);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn socket_type_ignores_creation_flags() {
        assert_eq!(
            SocketType::from_raw(libc::SOCK_STREAM | libc::SOCK_CLOEXEC),
            Some(SocketType::Stream)
        );
    }

    #[test]
    fn family_follows_the_address() {
        let entry = AddrInfo {
            socket_type: SocketType::Stream,
            protocol: 6,
            address: "[::1]:80".parse().unwrap(),
            canonical_name: None,
        };
        assert_eq!(entry.family(), AddressFamily::Inet6);
    }
}
