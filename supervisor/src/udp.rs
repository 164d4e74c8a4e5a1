//! Datagrams sent with an address on an unconnected UDP socket (`sendto`, `sendmsg` with
//! `msg_name`) to a destination the outgoing config sends through the target: the supervisor asks
//! the intproxy for a UDP relay of that destination (once per socket and destination), reads the
//! datagram from the program and sends it to the relay from a copy of the program's own socket
//! (`pidfd_getfd`), so the relay's answers come back to that socket. The filter stops `sendto`
//! only when it names an address, so `send` on a connected socket never costs a notification.
//!
//! `recvfrom` with an address on such a socket is served by the supervisor: it receives on its
//! copy (`MSG_DONTWAIT`), writes the datagram into the program's buffer and its source, the
//! destination a relay stands for, as the sender; a blocking socket with nothing to read is
//! parked with the waiter (`waits.rs`). The filter stops `recvfrom` only when it asks for the
//! source, and any other socket's `recvfrom` runs as is.
//!
//! Limits: `recvmsg` reports the relay's loopback address as the source (it runs untouched);
//! `sendmsg` with control messages runs untouched.

use std::{
    net::SocketAddr,
    os::fd::{AsFd, BorrowedFd},
};

use mirrord_protocol::{
    LayerRequest, LayerResponse,
    outgoing::{OutgoingConnectRequest, TransportProtocol},
};

use crate::{
    net::parse_sockaddr,
    net_filter::{Protocol, canonical},
    peer::write_address,
    remote,
    serve::{Outcome, Worker},
    sys::{self, Notification},
    waits::{Then, Wait},
};

/// The largest datagram a UDP socket sends.
const MAX_DATAGRAM: usize = 65_535;

/// `struct msghdr` on x86_64: the offsets of the fields read here, and its size.
const MSG_NAME: usize = 0;
const MSG_NAMELEN: usize = 8;
const MSG_IOV: usize = 16;
const MSG_IOVLEN: usize = 24;
const MSG_CONTROLLEN: usize = 40;
const MSGHDR_SIZE: usize = 56;
/// At most this many `iovec`s are gathered (Linux's `UIO_MAXIOV`).
const MAX_IOV: usize = 1024;

/// One datagram the program asked to send: where to, what, with which flags.
struct Datagram {
    fd: i32,
    destination: SocketAddr,
    payload: Vec<u8>,
    flags: i32,
}

impl Worker {
    /// `sendto(fd, buffer, length, flags, address, address_length)` with an address.
    pub(crate) fn sendto(&mut self, call: &Notification) -> Outcome {
        let [fd, buffer, length, flags, address, address_length] = call.args;
        let Some(destination) = read_address(call.pid, address, address_length) else {
            return Outcome::Continue;
        };
        let length = length as usize;
        if length > MAX_DATAGRAM {
            return Outcome::Continue;
        }
        let mut payload = vec![0u8; length];
        match sys::read_memory(call.pid, buffer, &mut payload) {
            Ok(read) if read == length => {}
            _ => return Outcome::Continue,
        }
        self.send_datagram(
            call,
            Datagram {
                fd: fd as i32,
                destination,
                payload,
                flags: flags as i32,
            },
        )
    }

    /// `sendmsg(fd, message, flags)`: only a message with an address and no control data.
    pub(crate) fn sendmsg(&mut self, call: &Notification) -> Outcome {
        let [fd, message, flags, ..] = call.args;
        let mut header = [0u8; MSGHDR_SIZE];
        if !matches!(
            sys::read_memory(call.pid, message, &mut header),
            Ok(MSGHDR_SIZE)
        ) {
            return Outcome::Continue;
        }
        let word =
            |offset: usize| u64::from_ne_bytes(header[offset..offset + 8].try_into().unwrap());
        let name_length =
            u32::from_ne_bytes(header[MSG_NAMELEN..MSG_NAMELEN + 4].try_into().unwrap());
        if word(MSG_NAME) == 0 || word(MSG_CONTROLLEN) != 0 {
            return Outcome::Continue;
        }
        let Some(destination) = read_address(call.pid, word(MSG_NAME), u64::from(name_length))
        else {
            return Outcome::Continue;
        };
        let Some(payload) = gather(call.pid, word(MSG_IOV), word(MSG_IOVLEN) as usize) else {
            return Outcome::Continue;
        };
        self.send_datagram(
            call,
            Datagram {
                fd: fd as i32,
                destination,
                payload,
                flags: flags as i32,
            },
        )
    }

    fn send_datagram(&mut self, call: &Notification, datagram: Datagram) -> Outcome {
        let Some(policy) = self.shared.outgoing.as_ref() else {
            return Outcome::Continue;
        };
        let Ok(socket) = sys::take_thread_descriptor(call.pid, datagram.fd) else {
            return Outcome::Continue;
        };
        let Ok((domain, kind)) = sys::socket_kind(socket.as_fd()) else {
            return Outcome::Continue;
        };
        if kind != libc::SOCK_DGRAM || !matches!(domain, libc::AF_INET | libc::AF_INET6) {
            return Outcome::Continue;
        }
        let destination = canonical(datagram.destination);
        if !policy.sends(Protocol::Udp, destination, |_| false) {
            return Outcome::Continue;
        }
        let Ok(inode) = sys::inode(socket.as_fd()) else {
            return Outcome::Continue;
        };
        if !self.shared.listener.id_valid(call.id) {
            return Outcome::Gone;
        }
        let key = (inode, destination);
        let known = policy
            .datagram_relays
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&key)
            .copied();
        let relay = match known {
            Some(relay) => relay,
            None => {
                match self
                    .remote
                    .request(LayerRequest::OutgoingConnect(OutgoingConnectRequest {
                        remote: destination,
                        protocol: TransportProtocol::Udp,
                    })) {
                    Ok(LayerResponse::OutgoingConnected(connected)) => {
                        policy
                            .datagram_relays
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner())
                            .insert(key, connected.intproxy_addr);
                        tracing::debug!(%destination, relay = %connected.intproxy_addr, "datagrams go through the target");
                        connected.intproxy_addr
                    }
                    Ok(other) => return Outcome::Fail(remote::unexpected(&other).errno()),
                    Err(error) => {
                        tracing::debug!(%error, %destination, "no datagram relay");
                        return Outcome::Fail(error.errno());
                    }
                }
            }
        };
        match sys::send_to(
            socket.as_fd(),
            &datagram.payload,
            datagram.flags,
            domain,
            relay,
        ) {
            Ok(sent) => Outcome::Value(sent as i64),
            Err(error) => Outcome::Fail(error.raw_os_error().unwrap_or(libc::EIO)),
        }
    }
}

impl Worker {
    /// `recvfrom(fd, buffer, length, flags, address, address_length)` with an address: served
    /// for a socket that sent datagrams through relays, else run as is.
    pub(crate) fn recvfrom(&mut self, call: &Notification) -> Outcome {
        let Some(policy) = self.shared.outgoing.as_ref() else {
            return Outcome::Continue;
        };
        let [fd, _, _, flags, ..] = call.args;
        let flags = flags as i32;
        if flags & libc::MSG_ERRQUEUE != 0 || relays_empty(policy) {
            return Outcome::Continue;
        }
        let Ok(socket) = sys::take_thread_descriptor(call.pid, fd as i32) else {
            return Outcome::Continue;
        };
        let Ok(inode) = sys::inode(socket.as_fd()) else {
            return Outcome::Continue;
        };
        let relayed = policy
            .datagram_relays
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .keys()
            .any(|&(socket, _)| socket == inode);
        if !relayed {
            return Outcome::Continue;
        }
        if !self.shared.listener.id_valid(call.id) {
            return Outcome::Gone;
        }
        if let Some(outcome) = self.receive_ready(call, socket.as_fd()) {
            return outcome;
        }
        if flags & libc::MSG_DONTWAIT != 0 || sys::is_nonblocking(socket.as_fd()).unwrap_or(true) {
            return Outcome::Fail(libc::EAGAIN);
        }
        self.shared
            .waits
            .park(Wait::new(*call, socket, Then::Receive))
    }

    /// The `recvfrom` of `call` on `socket` if a datagram is there; `None` while none is.
    pub(crate) fn receive_ready(
        &mut self,
        call: &Notification,
        socket: BorrowedFd<'_>,
    ) -> Option<Outcome> {
        let [_, buffer, length, flags, address, length_address] = call.args;
        let mut datagram = vec![0u8; (length as usize).min(MAX_DATAGRAM + 1)];
        let (received, source) =
            match sys::receive_from(socket, &mut datagram, flags as i32 | libc::MSG_DONTWAIT) {
                Ok(received) => received,
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return None,
                Err(error) => {
                    return Some(Outcome::Fail(error.raw_os_error().unwrap_or(libc::EIO)));
                }
            };
        let copied = received.min(datagram.len());
        if copied > 0 && sys::write_memory(call.pid, buffer, &datagram[..copied]).is_err() {
            return Some(Outcome::Fail(libc::EFAULT));
        }
        if address != 0
            && let Some(source) = source
        {
            let source = self.relayed_source(socket, source);
            let Ok((domain, _)) = sys::socket_kind(socket) else {
                return Some(Outcome::Fail(libc::EIO));
            };
            if let Err(errno) = write_address(call.pid, address, length_address, source, domain) {
                return Some(Outcome::Fail(errno));
            }
        }
        Some(Outcome::Value(received as i64))
    }

    /// The destination a relay of `socket` stands for when `source` is that relay, else `source`.
    fn relayed_source(&self, socket: BorrowedFd<'_>, source: SocketAddr) -> SocketAddr {
        let (Some(policy), Ok(inode)) = (self.shared.outgoing.as_ref(), sys::inode(socket)) else {
            return source;
        };
        let relay = canonical(source);
        policy
            .datagram_relays
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .find(|&(&(owner, _), &address)| owner == inode && canonical(address) == relay)
            .map_or(source, |(&(_, destination), _)| destination)
    }
}

/// Whether no datagram has gone through a relay yet (then no `recvfrom` needs serving).
fn relays_empty(policy: &crate::net::OutgoingPolicy) -> bool {
    policy
        .datagram_relays
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .is_empty()
}

/// The socket address at `address` in the program (`None` when it is not IPv4/IPv6 or unreadable).
fn read_address(pid: u32, address: u64, length: u64) -> Option<SocketAddr> {
    if address == 0 {
        return None;
    }
    let mut raw = [0u8; 128];
    let length = (length as usize).min(raw.len());
    let read = sys::read_memory(pid, address, &mut raw[..length]).ok()?;
    parse_sockaddr(&raw[..read])
}

/// The bytes of the program's `iovec` array at `iov` (`count` entries), joined; `None` when
/// unreadable or larger than a datagram.
fn gather(pid: u32, iov: u64, count: usize) -> Option<Vec<u8>> {
    if count > MAX_IOV {
        return None;
    }
    let mut vectors = vec![0u8; count * 16];
    if sys::read_memory(pid, iov, &mut vectors).ok()? != vectors.len() {
        return None;
    }
    let mut payload = Vec::new();
    for vector in vectors.chunks_exact(16) {
        let base = u64::from_ne_bytes(vector[..8].try_into().ok()?);
        let length = u64::from_ne_bytes(vector[8..].try_into().ok()?) as usize;
        if payload.len() + length > MAX_DATAGRAM {
            return None;
        }
        let start = payload.len();
        payload.resize(start + length, 0);
        if sys::read_memory(pid, base, &mut payload[start..]).ok()? != length {
            return None;
        }
    }
    Some(payload)
}
