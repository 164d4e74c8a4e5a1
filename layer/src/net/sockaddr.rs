//! Socket addresses as the kernel lays them out (`sockaddr_in`, `sockaddr_in6`, `sockaddr_un`),
//! read from and written to plain bytes. Shared by the layer and the supervisor (included by path),
//! so both read a program's addresses alike; no `unsafe`, no state.

use std::{
    ffi::c_int,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6},
};

/// Reads a `sockaddr_in`/`sockaddr_in6`.
pub(crate) fn parse_sockaddr(bytes: &[u8]) -> Option<SocketAddr> {
    let family = c_int::from(u16::from_ne_bytes(bytes.get(0..2)?.try_into().ok()?));
    let port = u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?);
    match family {
        libc::AF_INET if bytes.len() >= std::mem::size_of::<libc::sockaddr_in>() => {
            let ip: [u8; 4] = bytes[4..8].try_into().ok()?;
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
        }
        libc::AF_INET6 if bytes.len() >= std::mem::size_of::<libc::sockaddr_in6>() => {
            let flow_info = u32::from_ne_bytes(bytes[4..8].try_into().ok()?);
            let ip: [u8; 16] = bytes[8..24].try_into().ok()?;
            let scope_id = u32::from_ne_bytes(bytes[24..28].try_into().ok()?);
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port,
                u32::from_be(flow_info),
                scope_id,
            )))
        }
        _ => None,
    }
}

/// `address` as a sockaddr for a socket of `domain` (an IPv4 address becomes IPv4-mapped on an IPv6
/// socket); `None` when it cannot be expressed (IPv6 on an IPv4 socket).
pub(crate) fn sockaddr_bytes(address: SocketAddr, domain: c_int) -> Option<Vec<u8>> {
    let address = match (address, domain) {
        (SocketAddr::V4(v4), libc::AF_INET6) => {
            SocketAddr::V6(SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0))
        }
        (SocketAddr::V6(v6), libc::AF_INET) => {
            let v4 = v6.ip().to_ipv4_mapped()?;
            SocketAddr::V4(SocketAddrV4::new(v4, v6.port()))
        }
        (address, _) => address,
    };
    let mut bytes = Vec::with_capacity(std::mem::size_of::<libc::sockaddr_in6>());
    match address {
        SocketAddr::V4(v4) => {
            bytes.extend_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            bytes.extend_from_slice(&v4.port().to_be_bytes());
            bytes.extend_from_slice(&v4.ip().octets());
            bytes.resize(std::mem::size_of::<libc::sockaddr_in>(), 0);
        }
        SocketAddr::V6(v6) => {
            bytes.extend_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            bytes.extend_from_slice(&v6.port().to_be_bytes());
            bytes.extend_from_slice(&v6.flowinfo().to_be().to_ne_bytes());
            bytes.extend_from_slice(&v6.ip().octets());
            bytes.extend_from_slice(&v6.scope_id().to_ne_bytes());
        }
    }
    Some(bytes)
}

/// The path of a `sockaddr_un` naming a file (`None` for other families, unnamed and abstract
/// addresses).
pub(crate) fn unix_path(address: &[u8]) -> Option<&[u8]> {
    let family = c_int::from(u16::from_ne_bytes(address.get(0..2)?.try_into().ok()?));
    if family != libc::AF_UNIX {
        return None;
    }
    let path = address.get(2..)?;
    let end = path
        .iter()
        .position(|&byte| byte == 0)
        .unwrap_or(path.len());
    let path = &path[..end];
    (!path.is_empty()).then_some(path)
}
