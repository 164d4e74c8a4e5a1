//! Name resolution the way the target resolves: its `/etc/hosts` and `/etc/resolv.conf` (read
//! through its root) and queries sent from a socket in its network namespace.
//!
//! A small stub resolver of our own (A and AAAA over UDP, search domains with `ndots`, several
//! nameservers, timeouts and attempts from `agent.dns`): it needs nothing but sockets made by the
//! namespace thread, where a general resolver library would need its own runtime hooks to place
//! its sockets in the target's namespace.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::time::Duration;

use mirrord_protocol::dns::{AddrInfo, AddressFamily, GetAddrInfoRequest, SocketType};
use mirrord_protocol::{ErrorCode, RemoteError, RemoteResult};
use tokio::net::UdpSocket;

use crate::namespace::NamespaceWorker;

/// How the target resolves names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResolverConfig {
    nameservers: Vec<IpAddr>,
    search: Vec<String>,
    ndots: usize,
    hosts: Vec<(IpAddr, Vec<String>)>,
}

/// Timeouts for DNS queries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DnsLimits {
    pub(crate) timeout: Duration,
    pub(crate) attempts: u32,
}

impl ResolverConfig {
    /// Parses the target's `resolv.conf` and `hosts` texts.
    pub(crate) fn parse(resolv_conf: &str, hosts: &str) -> ResolverConfig {
        let mut config = ResolverConfig {
            nameservers: Vec::new(),
            search: Vec::new(),
            ndots: 1,
            hosts: Vec::new(),
        };
        for line in resolv_conf.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => config
                    .nameservers
                    .extend(words.next().and_then(|w| w.parse::<IpAddr>().ok())),
                Some("search" | "domain") => {
                    config.search = words.map(|w| w.trim_end_matches('.').to_owned()).collect()
                }
                Some("options") => {
                    for option in words {
                        if let Some(n) = option.strip_prefix("ndots:").and_then(|n| n.parse().ok())
                        {
                            config.ndots = n;
                        }
                    }
                }
                _ => {}
            }
        }
        if config.nameservers.is_empty() {
            config.nameservers.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        for line in hosts.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let Some(address) = words.next().and_then(|w| w.parse().ok()) else {
                continue;
            };
            config
                .hosts
                .push((address, words.map(|w| w.to_ascii_lowercase()).collect()));
        }
        config
    }

    /// Reads the target's files through `/proc/PID/root` (or this machine's for targetless).
    pub(crate) fn load(pid: Option<u32>) -> ResolverConfig {
        let root = pid.map_or_else(String::new, |pid| format!("/proc/{pid}/root"));
        let read =
            |path: &str| std::fs::read_to_string(format!("{root}{path}")).unwrap_or_default();
        ResolverConfig::parse(&read("/etc/resolv.conf"), &read("/etc/hosts"))
    }

    /// The names to query for `name`, in order (search domains first when it has few dots).
    fn candidates(&self, name: &str) -> Vec<String> {
        if let Some(absolute) = name.strip_suffix('.') {
            return vec![absolute.to_owned()];
        }
        let searched = self.search.iter().map(|domain| format!("{name}.{domain}"));
        if name.matches('.').count() >= self.ndots {
            std::iter::once(name.to_owned()).chain(searched).collect()
        } else {
            searched.chain(std::iter::once(name.to_owned())).collect()
        }
    }
}

/// Resolves like `getaddrinfo` for the target.
pub(crate) async fn getaddrinfo(
    namespace: &NamespaceWorker,
    config: &ResolverConfig,
    limits: DnsLimits,
    request: &GetAddrInfoRequest,
) -> RemoteResult<Vec<AddrInfo>> {
    let port = match request.service.as_deref() {
        None => 0,
        Some(service) => service_port(service).ok_or_else(|| {
            RemoteError::new(
                ErrorCode::Unsupported,
                format!("unknown service `{service}`"),
            )
        })?,
    };
    let addresses = match request.node.as_deref() {
        None => vec![if request.family == AddressFamily::Inet6 {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        } else {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }],
        Some(node) => match node.parse::<IpAddr>() {
            Ok(address) => vec![address],
            Err(_) => resolve_name(namespace, config, limits, node, request.family).await?,
        },
    };
    let socket_types = match request.socket_type {
        SocketType::Any => vec![
            (SocketType::Stream, libc::IPPROTO_TCP),
            (SocketType::Datagram, libc::IPPROTO_UDP),
            (SocketType::Raw, 0),
        ],
        other => vec![(other, request.protocol)],
    };
    let canonical_name = request.node.clone();
    let mut results = Vec::new();
    for address in addresses {
        let family_ok = match request.family {
            AddressFamily::Unspecified => true,
            AddressFamily::Inet => address.is_ipv4(),
            AddressFamily::Inet6 => address.is_ipv6(),
        };
        if !family_ok {
            continue;
        }
        for &(socket_type, protocol) in &socket_types {
            results.push(AddrInfo {
                socket_type,
                protocol,
                address: SocketAddr::new(address, port),
                canonical_name: if results.is_empty() {
                    canonical_name.clone()
                } else {
                    None
                },
            });
        }
    }
    if results.is_empty() {
        return Err(RemoteError::new(
            ErrorCode::NoSuchName,
            "no address of the requested family",
        ));
    }
    Ok(results)
}

fn service_port(service: &str) -> Option<u16> {
    service.parse().ok().or(match service {
        "http" => Some(80),
        "https" => Some(443),
        "ssh" => Some(22),
        "domain" => Some(53),
        "echo" => Some(7),
        "postgresql" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        _ => None,
    })
}

async fn resolve_name(
    namespace: &NamespaceWorker,
    config: &ResolverConfig,
    limits: DnsLimits,
    name: &str,
    family: AddressFamily,
) -> RemoteResult<Vec<IpAddr>> {
    let lowercase = name.to_ascii_lowercase();
    let from_hosts: Vec<IpAddr> = config
        .hosts
        .iter()
        .filter(|(_, names)| {
            names
                .iter()
                .any(|n| n == &lowercase || n.strip_suffix('.') == Some(lowercase.as_str()))
        })
        .map(|(address, _)| *address)
        .collect();
    if !from_hosts.is_empty() {
        return Ok(from_hosts);
    }
    let mut record_types = Vec::new();
    if family != AddressFamily::Inet6 {
        record_types.push(RECORD_A);
    }
    if family != AddressFamily::Inet {
        record_types.push(RECORD_AAAA);
    }
    let mut last_error = RemoteError::new(
        ErrorCode::NoSuchName,
        format!("`{name}` is not known to the target's DNS"),
    );
    for candidate in config.candidates(name) {
        let mut found = Vec::new();
        let mut exists = false;
        for &record_type in &record_types {
            match query(namespace, config, limits, &candidate, record_type).await {
                Ok(Answer::Addresses(addresses)) => {
                    exists = true;
                    found.extend(addresses);
                }
                Ok(Answer::NoSuchName) => {}
                Err(error) => last_error = error,
            }
        }
        if !found.is_empty() {
            return Ok(found);
        }
        if exists {
            last_error = RemoteError::new(
                ErrorCode::NoSuchName,
                format!("`{name}` has no address of the requested family"),
            );
        }
    }
    Err(last_error)
}

const RECORD_A: u16 = 1;
const RECORD_AAAA: u16 = 28;

enum Answer {
    Addresses(Vec<IpAddr>),
    NoSuchName,
}

async fn query(
    namespace: &NamespaceWorker,
    config: &ResolverConfig,
    limits: DnsLimits,
    name: &str,
    record_type: u16,
) -> RemoteResult<Answer> {
    let id = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(7)
        & 0xffff) as u16;
    let packet = encode_query(id, name, record_type).ok_or_else(|| {
        RemoteError::new(
            ErrorCode::InvalidInput,
            format!("`{name}` is not a valid DNS name"),
        )
    })?;
    let mut last_error = RemoteError::new(
        ErrorCode::TimedOut,
        "the target's DNS server did not answer",
    );
    for _ in 0..limits.attempts.max(1) {
        for &server in &config.nameservers {
            let domain = if server.is_ipv4() {
                libc::AF_INET
            } else {
                libc::AF_INET6
            };
            let fd: OwnedFd = namespace
                .socket(domain, libc::SOCK_DGRAM)
                .await
                .map_err(|e| RemoteError::from(&e))?;
            let socket = UdpSocket::from_std(std::net::UdpSocket::from(fd))
                .map_err(|e| RemoteError::from(&e))?;
            let exchange = async {
                socket.send_to(&packet, SocketAddr::new(server, 53)).await?;
                let mut buffer = vec![0u8; 4096];
                loop {
                    let (length, from) = socket.recv_from(&mut buffer).await?;
                    if from.ip() == server && length >= 2 && buffer[..2] == id.to_be_bytes() {
                        return Ok::<_, std::io::Error>(buffer[..length].to_vec());
                    }
                }
            };
            match tokio::time::timeout(limits.timeout, exchange).await {
                Ok(Ok(response)) => match decode_response(&response, record_type) {
                    Some(answer) => return Ok(answer),
                    None => {
                        last_error = RemoteError::new(
                            ErrorCode::TryAgain,
                            "the target's DNS server sent a malformed answer",
                        )
                    }
                },
                Ok(Err(error)) => last_error = RemoteError::from(&error),
                Err(_) => {}
            }
        }
    }
    Err(last_error)
}

fn encode_query(id: u16, name: &str, record_type: u16) -> Option<Vec<u8>> {
    let mut packet = Vec::with_capacity(32 + name.len());
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // recursion desired, one question
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        packet.push(label.len() as u8);
        packet.extend_from_slice(label.as_bytes());
    }
    packet.push(0);
    packet.extend_from_slice(&record_type.to_be_bytes());
    packet.extend_from_slice(&1u16.to_be_bytes()); // class IN
    Some(packet)
}

/// The addresses of type `record_type` in a response, or `None` when it is malformed.
fn decode_response(packet: &[u8], record_type: u16) -> Option<Answer> {
    let header = packet.get(..12)?;
    let rcode = header[3] & 0x0f;
    if rcode == 3 {
        return Some(Answer::NoSuchName);
    }
    if rcode != 0 {
        return None;
    }
    let questions = u16::from_be_bytes([header[4], header[5]]);
    let answers = u16::from_be_bytes([header[6], header[7]]);
    let mut offset = 12;
    for _ in 0..questions {
        offset = skip_name(packet, offset)? + 4;
    }
    let mut addresses = Vec::new();
    for _ in 0..answers {
        offset = skip_name(packet, offset)?;
        let fixed = packet.get(offset..offset + 10)?;
        let kind = u16::from_be_bytes([fixed[0], fixed[1]]);
        let length = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
        let data = packet.get(offset + 10..offset + 10 + length)?;
        if kind == record_type {
            match (kind, data.len()) {
                (RECORD_A, 4) => addresses.push(IpAddr::from(<[u8; 4]>::try_from(data).ok()?)),
                (RECORD_AAAA, 16) => addresses.push(IpAddr::from(<[u8; 16]>::try_from(data).ok()?)),
                _ => return None,
            }
        }
        offset += 10 + length;
    }
    Some(Answer::Addresses(addresses))
}

/// The offset just after a (possibly compressed) name starting at `offset`.
fn skip_name(packet: &[u8], mut offset: usize) -> Option<usize> {
    loop {
        let length = *packet.get(offset)?;
        match length {
            0 => return Some(offset + 1),
            l if l & 0xc0 == 0xc0 => return Some(offset + 2),
            l => offset += 1 + l as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_target_files() {
        let config = ResolverConfig::parse(
            "# sandbox\nnameserver 127.0.0.1\nsearch sandbox.svc svc\noptions ndots:2 timeout:1\n",
            "127.0.0.1 localhost\n10.0.0.9 api.sandbox.svc api # comment\n",
        );
        assert_eq!(config.nameservers, [IpAddr::V4(Ipv4Addr::LOCALHOST)]);
        assert_eq!(config.search, ["sandbox.svc", "svc"]);
        assert_eq!(config.ndots, 2);
        assert_eq!(config.candidates("db"), ["db.sandbox.svc", "db.svc", "db"]);
        assert_eq!(
            config.candidates("db.sandbox.svc"),
            [
                "db.sandbox.svc",
                "db.sandbox.svc.sandbox.svc",
                "db.sandbox.svc.svc"
            ]
        );
        assert_eq!(config.candidates("x.y."), ["x.y"]);
        assert_eq!(config.hosts[1].1, ["api.sandbox.svc", "api"]);
    }

    #[test]
    fn encodes_queries_and_decodes_answers() {
        let query = encode_query(0x1234, "db.sandbox.svc", RECORD_A).unwrap();
        // A response: the query with the answer flag, one answer pointing back at the question.
        let mut response = query.clone();
        response[2] = 0x81;
        response[3] = 0x80;
        response[7] = 1;
        response.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 242, 1, 2]);
        match decode_response(&response, RECORD_A) {
            Some(Answer::Addresses(addresses)) => {
                assert_eq!(addresses, [IpAddr::V4(Ipv4Addr::new(10, 242, 1, 2))])
            }
            _ => panic!("expected an address"),
        }
        response[3] = 0x83;
        assert!(matches!(
            decode_response(&response, RECORD_A),
            Some(Answer::NoSuchName)
        ));
        assert!(decode_response(&response[..5], RECORD_A).is_none());
        assert!(encode_query(1, "a..b", RECORD_A).is_none());
    }
}
