//! Datagrams sent with an address on an unconnected UDP socket (`sendto`, `sendmsg` with
//! `msg_name`) to a destination the outgoing config sends through the target: the supervisor asks
//! the intproxy for a UDP relay of that destination (once per socket and destination), reads the
//! datagram from the program and sends it to the relay from a copy of the program's own socket
//! (`pidfd_getfd`), so the relay's answers come back to that socket. The filter stops `sendto`
//! only when it names an address, so `send` on a connected socket never costs a notification.
//!
//! Limits: a received datagram's source is the relay's loopback address (the program's
//! `recvfrom` is a plain system call); `sendmsg` with control messages runs untouched.

use std::{net::SocketAddr, os::fd::AsFd};

use mirrord_protocol::{
    LayerRequest, LayerResponse,
    outgoing::{OutgoingConnectRequest, TransportProtocol},
};

use crate::{
    net::parse_sockaddr,
    net_filter::{Protocol, canonical},
    remote,
    serve::{Outcome, Worker},
    sys::{self, Notification},
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
