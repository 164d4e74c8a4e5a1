//! Name resolution and the hostname: the safe logic behind the DNS shims.
//!
//! `getaddrinfo` goes through the target when `feature.network.dns` is on and its filter allows the name;
//! numeric hosts, `localhost` and a null node stay local. The answer is built as a list of `addrinfo`
//! allocated with libc's `malloc` in glibc's own layout (one block per entry holding the `addrinfo` and its
//! address; the canonical name separately), so even libc's `freeaddrinfo` could free it. The layer
//! remembers the lists it made and frees them in its `freeaddrinfo` shim; other lists go to libc.
//!
//! When the layer resolves locally it still calls the original with the guard held, so that libc's own
//! reads of `/etc/hosts` and `/etc/resolv.conf` and its resolver sockets stay local too.

pub(crate) mod shims;

use std::{
    any::Any,
    collections::BTreeSet,
    ffi::{CStr, CString, c_int},
    mem::size_of,
    net::{IpAddr, SocketAddr},
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use mirrord_config::resolved::DnsConfig;
use mirrord_protocol::{
    LayerRequest, LayerResponse, RemoteError,
    dns::{AddrInfo, AddrInfoFlags, AddressFamily, GetAddrInfoRequest, SocketType},
};

use crate::{
    connection::{request, unexpected},
    detour::{Outcome, lock},
    net::{
        filter::{AddressFilter, FilterError},
        sockaddr_bytes,
    },
    process, setup,
};

/// What `feature.network.dns` asks for.
#[derive(Debug)]
pub(crate) struct DnsPolicy {
    enabled: bool,
    filter: Option<AddressFilter>,
    /// `network.ipv6`: with it off, the target's IPv6 answers are dropped.
    ipv6: bool,
}

impl DnsPolicy {
    /// Compiles the config.
    pub(crate) fn new(config: &DnsConfig) -> Result<Self, FilterError> {
        Ok(Self {
            enabled: config.enabled,
            filter: config.filter.as_ref().map(AddressFilter::new).transpose()?,
            ipv6: false,
        })
    }

    /// Keeps the target's IPv6 answers (`network.ipv6`).
    pub(crate) fn with_ipv6(self, ipv6: bool) -> Self {
        Self { ipv6, ..self }
    }

    /// Whether resolving `name` (for `port`) goes through the target.
    pub(crate) fn sends(&self, name: &str, port: Option<u16>) -> bool {
        self.enabled
            && !name.is_empty()
            && name.parse::<IpAddr>().is_err()
            && !is_localhost(name)
            && self
                .filter
                .as_ref()
                .is_none_or(|filter| filter.sends_name(name, port))
    }
}

/// `h_errno` values of `<netdb.h>` (glibc).
const HOST_NOT_FOUND: c_int = 1;
const TRY_AGAIN: c_int = 2;
const NO_RECOVERY: c_int = 3;

fn is_localhost(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost") || name == "localhost.localdomain"
}

/// The `addrinfo` lists the layer allocated (head addresses).
static OUR_LISTS: Mutex<BTreeSet<usize>> = Mutex::new(BTreeSet::new());
/// How many there are, so that `freeaddrinfo` of libc's lists never takes the lock when there are none.
static OUR_LIST_COUNT: AtomicUsize = AtomicUsize::new(0);
/// The target's hostname, asked once per process.
static HOSTNAME: Mutex<Option<String>> = Mutex::new(None);

/// Takes the DNS locks for the duration of a `fork` (see [`crate::process`]).
pub(crate) fn lock_for_fork() -> Box<dyn Any> {
    Box::new((lock(&OUR_LISTS), lock(&HOSTNAME)))
}

/// The arguments of a `getaddrinfo` call, as safe values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Query {
    /// The node.
    pub(crate) node: String,
    /// The service.
    pub(crate) service: Option<String>,
    /// The hints.
    pub(crate) family: c_int,
    pub(crate) socket_type: c_int,
    pub(crate) protocol: c_int,
    pub(crate) flags: c_int,
}

/// `getaddrinfo`: the target's answer as a libc-allocated list, or an `EAI_*` code (errno set for
/// `EAI_SYSTEM`).
pub(crate) fn getaddrinfo(query: &Query) -> Outcome<Result<usize, c_int>> {
    let Some(layer) = setup::layer() else {
        return Outcome::Bypass("inactive");
    };
    let port = query
        .service
        .as_deref()
        .and_then(|service| service.parse::<u16>().ok());
    if query.flags & libc::AI_NUMERICHOST != 0 || !layer.dns.sends(&query.node, port) {
        return Outcome::Bypass("resolved locally");
    }
    if process::in_borrowed_memory() {
        return Outcome::Bypass("vfork child");
    }
    let (Some(family), Some(socket_type)) = (
        AddressFamily::from_raw(query.family),
        SocketType::from_raw(query.socket_type),
    ) else {
        return Outcome::Bypass("hints the target cannot answer");
    };
    // With IPv6 off an unspecified family asks for IPv4 only (no AAAA question at all).
    let family = match family {
        AddressFamily::Unspecified if !layer.dns.ipv6 => AddressFamily::Inet,
        family => family,
    };
    let request = GetAddrInfoRequest {
        node: Some(query.node.clone()),
        service: query.service.clone(),
        family,
        socket_type,
        protocol: query.protocol,
        flags: AddrInfoFlags::from_raw(query.flags),
    };
    let answer = resolve(request).map(|entries| {
        if layer.dns.ipv6 {
            entries
        } else {
            without_ipv6(entries)
        }
    });
    match answer {
        Ok(entries) if entries.is_empty() => Outcome::Handled(Err(libc::EAI_NONAME)),
        Ok(entries) => match build_list(&entries) {
            Some(head) => {
                lock(&OUR_LISTS).insert(head as usize);
                OUR_LIST_COUNT.fetch_add(1, Ordering::AcqRel);
                Outcome::Handled(Ok(head as usize))
            }
            None => Outcome::Handled(Err(libc::EAI_MEMORY)),
        },
        Err(error) => {
            tracing::debug!(%error, node = %query.node, "remote name resolution failed");
            let eai = error.code.eai();
            if eai == libc::EAI_SYSTEM {
                // The shim returns EAI_SYSTEM with this errno.
                return Outcome::Fail(error.errno());
            }
            Outcome::Handled(Err(eai))
        }
    }
}

/// `entries` without IPv6 addresses (IPv4-mapped ones are IPv4 and stay); the canonical name moves
/// to the new first entry.
fn without_ipv6(entries: Vec<AddrInfo>) -> Vec<AddrInfo> {
    let canonical_name = entries
        .first()
        .and_then(|first| first.canonical_name.clone());
    let mut kept: Vec<AddrInfo> = entries
        .into_iter()
        .filter(|entry| match entry.address.ip() {
            IpAddr::V4(_) => true,
            IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some(),
        })
        .collect();
    if let Some(first) = kept.first_mut()
        && first.canonical_name.is_none()
    {
        first.canonical_name = canonical_name;
    }
    kept
}

fn resolve(request: GetAddrInfoRequest) -> Result<Vec<AddrInfo>, RemoteError> {
    match self::request(LayerRequest::GetAddrInfo(request))? {
        LayerResponse::AddrInfo(entries) => Ok(entries),
        other => Err(unexpected(&other)),
    }
}

/// Resolves `name` through the target (for filter entries).
pub(crate) fn resolve_remote(name: &str) -> Result<Vec<IpAddr>, RemoteError> {
    resolve(GetAddrInfoRequest {
        node: Some(name.to_owned()),
        socket_type: SocketType::Stream,
        ..GetAddrInfoRequest::default()
    })
    .map(|entries| entries.iter().map(|entry| entry.address.ip()).collect())
}

/// `freeaddrinfo` of a list the layer made: frees it and returns true; false for libc's lists.
pub(crate) fn free_if_ours(head: usize) -> bool {
    if OUR_LIST_COUNT.load(Ordering::Acquire) == 0 || !lock(&OUR_LISTS).remove(&head) {
        return false;
    }
    OUR_LIST_COUNT.fetch_sub(1, Ordering::AcqRel);
    // SAFETY: `head` was in `OUR_LISTS`, so it is the head of a list `build_list` made and handed out
    // once; removing it from the set means nobody frees it again.
    unsafe { free_list(head as *mut libc::addrinfo) };
    true
}

/// Whether `freeaddrinfo` may have to free a list of the layer's (cheap).
pub(crate) fn has_lists() -> bool {
    OUR_LIST_COUNT.load(Ordering::Acquire) > 0
}

/// Builds a libc-allocated `addrinfo` list; `None` when allocation failed (nothing is leaked).
fn build_list(entries: &[AddrInfo]) -> Option<*mut libc::addrinfo> {
    let mut head: *mut libc::addrinfo = std::ptr::null_mut();
    let mut tail: *mut libc::addrinfo = std::ptr::null_mut();
    for entry in entries {
        let Some(node) = allocate_entry(entry) else {
            // SAFETY: `head` is null or the list built so far here, not yet handed out.
            unsafe { free_list(head) };
            return None;
        };
        if tail.is_null() {
            head = node;
        } else {
            // SAFETY: `tail` is the previous node, allocated and initialised by `allocate_entry`.
            unsafe { (*tail).ai_next = node };
        }
        tail = node;
    }
    Some(head)
}

/// One `addrinfo` and its `sockaddr` in one `malloc` block (glibc's layout).
fn allocate_entry(entry: &AddrInfo) -> Option<*mut libc::addrinfo> {
    let domain = match entry.address {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    let address = sockaddr_bytes(entry.address, domain)?;
    let canonical_name = match &entry.canonical_name {
        Some(name) => Some(copy_to_malloc(&CString::new(name.as_str()).ok()?)?),
        None => None,
    };
    let size = size_of::<libc::addrinfo>() + address.len();
    // SAFETY: calloc(3) with a non-zero size; the result is checked for null.
    let block = unsafe { libc::calloc(1, size) }.cast::<libc::addrinfo>();
    if block.is_null() {
        if let Some(name) = canonical_name {
            // SAFETY: `name` came from malloc in `copy_to_malloc` and is freed once.
            unsafe { libc::free(name.cast()) };
        }
        return None;
    }
    // SAFETY: `block` has room for an `addrinfo` followed by `address.len()` bytes (size above); calloc
    // memory is suitably aligned for any type.
    unsafe {
        let sockaddr = block.add(1).cast::<u8>();
        std::ptr::copy_nonoverlapping(address.as_ptr(), sockaddr, address.len());
        block.write(libc::addrinfo {
            ai_flags: 0,
            ai_family: domain,
            ai_socktype: entry.socket_type.to_raw(),
            ai_protocol: entry.protocol,
            ai_addrlen: address.len() as libc::socklen_t,
            ai_addr: sockaddr.cast(),
            ai_canonname: canonical_name.unwrap_or(std::ptr::null_mut()),
            ai_next: std::ptr::null_mut(),
        });
    }
    Some(block)
}

/// A `malloc`ed copy of a C string.
fn copy_to_malloc(text: &CStr) -> Option<*mut libc::c_char> {
    let bytes = text.to_bytes_with_nul();
    // SAFETY: malloc(3) with a non-zero size; checked for null.
    let copy = unsafe { libc::malloc(bytes.len()) }.cast::<libc::c_char>();
    if copy.is_null() {
        return None;
    }
    // SAFETY: `copy` has room for `bytes.len()` bytes.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr().cast(), copy, bytes.len()) };
    Some(copy)
}

/// Frees a list built by `build_list`.
///
/// # Safety
///
/// `node` is null or the head of a list `build_list` made (or was making), which nothing uses any more
/// and nothing frees again.
unsafe fn free_list(mut node: *mut libc::addrinfo) {
    while !node.is_null() {
        // SAFETY: every node of a list built here is a live calloc block whose canonical name, when set,
        // is a live malloc block; each is freed exactly once (this function's contract).
        unsafe {
            let next = (*node).ai_next;
            libc::free((*node).ai_canonname.cast());
            libc::free(node.cast());
            node = next;
        }
    }
}

/// `gethostbyname`: the target's IPv4 addresses of `name`.
pub(crate) fn gethostbyname(name: &str) -> Outcome<Result<Vec<[u8; 4]>, c_int>> {
    let Some(layer) = setup::layer() else {
        return Outcome::Bypass("inactive");
    };
    if !layer.dns.sends(name, None) {
        return Outcome::Bypass("resolved locally");
    }
    if process::in_borrowed_memory() {
        return Outcome::Bypass("vfork child");
    }
    match resolve(GetAddrInfoRequest {
        node: Some(name.to_owned()),
        family: AddressFamily::Inet,
        socket_type: SocketType::Stream,
        ..GetAddrInfoRequest::default()
    }) {
        Ok(entries) => {
            let addresses: Vec<[u8; 4]> = entries
                .iter()
                .filter_map(|entry| match entry.address.ip() {
                    IpAddr::V4(v4) => Some(v4.octets()),
                    IpAddr::V6(_) => None,
                })
                .collect();
            if addresses.is_empty() {
                Outcome::Handled(Err(HOST_NOT_FOUND))
            } else {
                Outcome::Handled(Ok(addresses))
            }
        }
        Err(error) => Outcome::Handled(Err(match error.code {
            mirrord_protocol::ErrorCode::NoSuchName => HOST_NOT_FOUND,
            mirrord_protocol::ErrorCode::TryAgain => TRY_AGAIN,
            _ => NO_RECOVERY,
        })),
    }
}

/// `gethostname`: the target's hostname (asked once per process).
pub(crate) fn hostname() -> Outcome<String> {
    if !setup::layer().is_some_and(|layer| layer.hostname) {
        return Outcome::Bypass("hostname feature off");
    }
    if let Some(name) = lock(&HOSTNAME).clone() {
        return Outcome::Handled(name);
    }
    if process::in_borrowed_memory() {
        return Outcome::Bypass("vfork child");
    }
    match request(LayerRequest::GetHostname) {
        Ok(LayerResponse::Hostname(name)) => {
            *lock(&HOSTNAME) = Some(name.clone());
            Outcome::Handled(name)
        }
        Ok(other) => {
            tracing::warn!(error = %unexpected(&other), "unexpected hostname answer");
            Outcome::Bypass("unexpected answer")
        }
        Err(error) => {
            tracing::debug!(%error, "the target's hostname is unavailable; using the local one");
            Outcome::Bypass("remote hostname unavailable")
        }
    }
}

#[cfg(test)]
mod tests {
    use mirrord_config::resolved::ResolvedAddressFilter;

    use super::*;

    #[test]
    fn numeric_and_local_names_are_never_sent() {
        let policy = DnsPolicy::new(&DnsConfig {
            enabled: true,
            filter: None,
        })
        .unwrap();
        for name in [
            "10.0.0.1",
            "::1",
            "localhost",
            "LOCALHOST.",
            "app.localhost",
            "",
        ] {
            assert!(!policy.sends(name, None), "{name}");
        }
        assert!(policy.sends("db.sandbox.svc", Some(80)));
    }

    #[test]
    fn disabled_or_filtered_names_stay_local() {
        let disabled = DnsPolicy::new(&DnsConfig {
            enabled: false,
            filter: None,
        })
        .unwrap();
        assert!(!disabled.sends("db.sandbox.svc", None));
        let filtered = DnsPolicy::new(&DnsConfig {
            enabled: true,
            filter: Some(ResolvedAddressFilter::Local(vec!["internal.corp".into()])),
        })
        .unwrap();
        assert!(!filtered.sends("internal.corp", None));
        assert!(filtered.sends("db.sandbox.svc", None));
    }

    #[test]
    fn ipv6_answers_are_dropped_unless_ipv6_is_on() {
        let entry = |address: &str, name: Option<&str>| AddrInfo {
            socket_type: SocketType::Stream,
            protocol: 6,
            address: address.parse().unwrap(),
            canonical_name: name.map(str::to_owned),
        };
        let kept = without_ipv6(vec![
            entry("[fd00::5]:80", Some("db.sandbox.svc")),
            entry("10.0.0.5:80", None),
            entry("[::ffff:10.0.0.6]:80", None),
        ]);
        assert_eq!(
            kept,
            vec![
                entry("10.0.0.5:80", Some("db.sandbox.svc")),
                entry("[::ffff:10.0.0.6]:80", None),
            ]
        );
        assert!(without_ipv6(vec![entry("[fd00::5]:80", None)]).is_empty());
    }

    #[test]
    fn lists_are_built_in_order_and_freed() {
        let entries = vec![
            AddrInfo {
                socket_type: SocketType::Stream,
                protocol: libc::IPPROTO_TCP,
                address: "10.242.0.2:80".parse().unwrap(),
                canonical_name: Some("db.sandbox.svc".into()),
            },
            AddrInfo {
                socket_type: SocketType::Datagram,
                protocol: libc::IPPROTO_UDP,
                address: "[fd00::2]:80".parse().unwrap(),
                canonical_name: None,
            },
        ];
        let head = build_list(&entries).unwrap();
        // SAFETY: `head` is a list of two nodes just built; they are read, then freed once.
        unsafe {
            let first = &*head;
            assert_eq!(first.ai_family, libc::AF_INET);
            assert_eq!(first.ai_socktype, libc::SOCK_STREAM);
            let address =
                std::slice::from_raw_parts(first.ai_addr.cast::<u8>(), first.ai_addrlen as usize);
            assert_eq!(
                crate::net::parse_sockaddr(address),
                Some("10.242.0.2:80".parse().unwrap())
            );
            assert_eq!(
                CStr::from_ptr(first.ai_canonname).to_bytes(),
                b"db.sandbox.svc"
            );
            let second = &*first.ai_next;
            assert_eq!(second.ai_family, libc::AF_INET6);
            assert!(second.ai_canonname.is_null());
            assert!(second.ai_next.is_null());
        }
        lock(&OUR_LISTS).insert(head as usize);
        OUR_LIST_COUNT.fetch_add(1, Ordering::AcqRel);
        assert!(free_if_ours(head as usize));
        assert!(!free_if_ours(head as usize));
    }
}
