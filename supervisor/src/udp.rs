//! Datagrams sent with an address on an unconnected UDP socket (`sendto`, `sendmsg` and
//! `sendmmsg` with `msg_name`) to a destination the outgoing config sends through the target: the supervisor asks
//! the intproxy for a UDP relay of that destination (once per socket and destination), reads the
//! datagram from the program and sends it to the relay from a copy of the program's own socket
//! (`pidfd_getfd`), so the relay's answers come back to that socket. The filter stops `sendto`
//! only when it names an address, so `send` on a connected socket never costs a notification.
//!
//! `recvfrom` with an address, and `recvmsg`/`recvmmsg` with a `msg_name`, on such a socket are served by
//! the supervisor: it receives on its copy (`MSG_DONTWAIT`), writes the datagram into the
//! program's buffers and its source, the destination a relay stands for, as the sender (`recvmsg`
//! also gets the control data, `msg_controllen` and `msg_flags`); a blocking socket with nothing
//! to read is parked with the waiter (`waits.rs`). The filter stops `recvfrom` only when it asks
//! for the source; it cannot see into a `msghdr`, so it stops every `recvmsg`/`recvmmsg` while outgoing UDP
//! goes through the target, and the supervisor lets one go on at once, reading nothing, until a
//! datagram has gone through a relay. Any other socket's call runs as is.
//!
//! `sendmsg` keeps its control data (`UDP_SEGMENT`, `IP_TOS`, ...); `sendmmsg` sends its messages
//! in turn while they have addresses that go through the target.

use std::{
    net::SocketAddr,
    os::fd::{AsFd, BorrowedFd, OwnedFd},
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
const MSG_CONTROL: usize = 32;
const MSG_CONTROLLEN: usize = 40;
const MSG_FLAGS: usize = 48;
const MSGHDR_SIZE: usize = 56;
/// `struct mmsghdr`: a `msghdr`, then `msg_len` (and padding).
const MMSGHDR_SIZE: u64 = 64;
const MSG_LEN: u64 = 56;
/// At most this much control data is received for a program's `recvmsg` (more is `MSG_CTRUNC`).
const MAX_CONTROL: usize = 64 * 1024;
/// At most this many `iovec`s are gathered (Linux's `UIO_MAXIOV`).
const MAX_IOV: usize = 1024;

/// One datagram the program asked to send: where to, what, with which control data and flags.
struct Datagram {
    fd: i32,
    destination: SocketAddr,
    payload: Vec<u8>,
    control: Vec<u8>,
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
                control: Vec::new(),
                flags: flags as i32,
            },
        )
    }

    /// `sendmsg(fd, message, flags)`: a message with an address (its control data, such as
    /// `UDP_SEGMENT` or `IP_TOS`, goes with it).
    pub(crate) fn sendmsg(&mut self, call: &Notification) -> Outcome {
        let [fd, message, flags, ..] = call.args;
        match read_datagram(call.pid, fd as i32, message, flags as i32) {
            Some(datagram) => self.send_datagram(call, datagram),
            None => Outcome::Continue,
        }
    }

    /// `sendmmsg(fd, messages, count, flags)` whose first message has an address: its messages
    /// in turn, each with `msg_len` written, up to the first that has no address or that the
    /// outgoing config keeps local. The call returns how many went, as `sendmmsg` may; the
    /// program's next call, starting with that message, runs as is.
    pub(crate) fn sendmmsg(&mut self, call: &Notification) -> Outcome {
        let [fd, messages, count, flags, ..] = call.args;
        let count = (count as u32).min(MAX_IOV as u32);
        let mut sent = 0;
        while sent < count {
            let entry = messages + u64::from(sent) * MMSGHDR_SIZE;
            let Some(datagram) = read_datagram(call.pid, fd as i32, entry, flags as i32) else {
                break;
            };
            match self.send_datagram(call, datagram) {
                Outcome::Value(length) => {
                    let length = (length as u32).to_ne_bytes();
                    if sys::write_memory(call.pid, entry + MSG_LEN, &length).is_err() {
                        return Outcome::Fail(libc::EFAULT);
                    }
                    sent += 1;
                }
                outcome if sent == 0 => return outcome,
                _ => break,
            }
        }
        if sent == 0 {
            Outcome::Continue
        } else {
            Outcome::Value(i64::from(sent))
        }
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
        match sys::send_message(
            socket.as_fd(),
            &datagram.payload,
            &datagram.control,
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
        let [fd, _, _, flags, ..] = call.args;
        match self.relayed_socket(call, fd, flags as i32) {
            Ok(socket) => self.receive_or_park(call, socket, flags as i32, Then::Receive),
            Err(outcome) => outcome,
        }
    }

    /// `recvmsg(fd, message, flags)`: served when the message asks for the source (`msg_name`)
    /// on a socket that sent datagrams through relays, else run as is.
    pub(crate) fn recvmsg(&mut self, call: &Notification) -> Outcome {
        let [fd, message, flags, ..] = call.args;
        self.receive_with_source(call, fd, message, flags as i32, Then::ReceiveMessage)
    }

    /// `recvmmsg(fd, messages, count, flags, timeout)`: served like `recvmsg` when the first
    /// message asks for the source.
    pub(crate) fn recvmmsg(&mut self, call: &Notification) -> Outcome {
        let [fd, messages, count, flags, ..] = call.args;
        if count == 0 {
            return Outcome::Continue;
        }
        self.receive_with_source(call, fd, messages, flags as i32, Then::ReceiveMessages)
    }

    /// A `recvmsg`/`recvmmsg` whose (first) message is at `message`: received by the supervisor
    /// (`then`) when the message has a `msg_name` and the socket sent datagrams through relays.
    fn receive_with_source(
        &mut self,
        call: &Notification,
        fd: u64,
        message: u64,
        flags: i32,
        then: Then,
    ) -> Outcome {
        // Before anything is read from the program: most programs never send a datagram through
        // a relay, and their `recvmsg` (netlink, unix sockets) goes on at once.
        if self.shared.outgoing.as_ref().is_none_or(relays_empty) {
            return Outcome::Continue;
        }
        match MessageHeader::read(call.pid, message) {
            Some(header) if header.name != 0 => {}
            _ => return Outcome::Continue,
        }
        match self.relayed_socket(call, fd, flags) {
            Ok(socket) => self.receive_or_park(call, socket, flags, then),
            Err(outcome) => outcome,
        }
    }

    /// The supervisor's copy of the program's socket `fd` when datagrams went from it through a
    /// relay and the call is still waiting; otherwise the call's outcome (`CONTINUE`, or gone).
    fn relayed_socket(&self, call: &Notification, fd: u64, flags: i32) -> Result<OwnedFd, Outcome> {
        let Some(policy) = self.shared.outgoing.as_ref() else {
            return Err(Outcome::Continue);
        };
        if flags & libc::MSG_ERRQUEUE != 0 || relays_empty(policy) {
            return Err(Outcome::Continue);
        }
        let socket =
            sys::take_thread_descriptor(call.pid, fd as i32).map_err(|_| Outcome::Continue)?;
        let inode = sys::inode(socket.as_fd()).map_err(|_| Outcome::Continue)?;
        let relayed = policy
            .datagram_relays
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .keys()
            .any(|&(socket, _)| socket == inode);
        if !relayed {
            return Err(Outcome::Continue);
        }
        if !self.shared.listener.id_valid(call.id) {
            return Err(Outcome::Gone);
        }
        Ok(socket)
    }

    /// Receives for `call` now if a datagram is there; else `EAGAIN` for a non-blocking call, or
    /// the call waits with the waiter until one is.
    fn receive_or_park(
        &mut self,
        call: &Notification,
        socket: OwnedFd,
        flags: i32,
        then: Then,
    ) -> Outcome {
        if let Some(outcome) = self.serve_ready(then, call, socket.as_fd()) {
            return outcome;
        }
        if flags & libc::MSG_DONTWAIT != 0 || sys::is_nonblocking(socket.as_fd()).unwrap_or(true) {
            return Outcome::Fail(libc::EAGAIN);
        }
        self.shared.waits.park(Wait::new(*call, socket, then))
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

    /// The `recvmsg` of `call` on `socket` if a datagram is there; `None` while none is.
    pub(crate) fn receive_message_ready(
        &mut self,
        call: &Notification,
        socket: BorrowedFd<'_>,
    ) -> Option<Outcome> {
        let [_, message, flags, ..] = call.args;
        match self.receive_one(call.pid, socket, message, flags as i32) {
            Ok(Some(received)) => Some(Outcome::Value(received as i64)),
            Ok(None) => None,
            Err(errno) => Some(Outcome::Fail(errno)),
        }
    }

    /// The `recvmmsg` of `call` on `socket`: every datagram already there, up to its `vlen`, each
    /// into its own message with its length in `msg_len`; `None` while none is. (Like the kernel,
    /// it waits for the first datagram only as `SO_RCVTIMEO` says; it then returns what is there
    /// rather than waiting for more, which a caller must expect of `recvmmsg` anyway.)
    pub(crate) fn receive_messages_ready(
        &mut self,
        call: &Notification,
        socket: BorrowedFd<'_>,
    ) -> Option<Outcome> {
        let [_, messages, count, flags, ..] = call.args;
        let count = (count as u32).min(MAX_IOV as u32);
        let mut received = 0;
        while received < count {
            let entry = messages + u64::from(received) * MMSGHDR_SIZE;
            match self.receive_one(call.pid, socket, entry, flags as i32) {
                Ok(Some(length)) => {
                    let length = (length as u32).to_ne_bytes();
                    if sys::write_memory(call.pid, entry + MSG_LEN, &length).is_err() {
                        return Some(Outcome::Fail(libc::EFAULT));
                    }
                    received += 1;
                }
                Ok(None) => break,
                Err(errno) if received == 0 => return Some(Outcome::Fail(errno)),
                Err(_) => break,
            }
        }
        (received > 0).then_some(Outcome::Value(i64::from(received)))
    }

    /// Receives one datagram on `socket` into the program's message at `message`: the data
    /// scattered over its buffers, the source (the destination a relay stands for), the control
    /// data, `msg_controllen` and `msg_flags`. `Ok(None)` while no datagram is there; `Err` is the
    /// call's errno.
    fn receive_one(
        &self,
        pid: u32,
        socket: BorrowedFd<'_>,
        message: u64,
        flags: i32,
    ) -> Result<Option<usize>, i32> {
        let header = MessageHeader::read(pid, message).ok_or(libc::EFAULT)?;
        if header.iov_count > MAX_IOV {
            return Err(libc::EMSGSIZE);
        }
        let buffers = buffers(pid, header.iov, header.iov_count).ok_or(libc::EFAULT)?;
        let room: usize = buffers.iter().map(|&(_, length)| length).sum();
        let mut datagram = vec![0u8; room.min(MAX_DATAGRAM + 1)];
        let mut control = vec![0u8; header.control_length.min(MAX_CONTROL)];
        let received = match sys::receive_message(
            socket,
            &mut datagram,
            &mut control,
            flags | libc::MSG_DONTWAIT,
        ) {
            Ok(received) => received,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return Ok(None),
            Err(error) => return Err(error.raw_os_error().unwrap_or(libc::EIO)),
        };
        let mut rest = &datagram[..received.received.min(datagram.len())];
        for (base, length) in buffers {
            if rest.is_empty() {
                break;
            }
            let (part, after) = rest.split_at(length.min(rest.len()));
            sys::write_memory(pid, base, part).map_err(|_| libc::EFAULT)?;
            rest = after;
        }
        if header.name != 0
            && let Some(source) = received.source
        {
            let source = self.relayed_source(socket, source);
            let (domain, _) = sys::socket_kind(socket).map_err(|_| libc::EIO)?;
            let length_address = message + MSG_NAMELEN as u64;
            write_address(pid, header.name, length_address, source, domain)?;
        }
        let control = &control[..received.control_length];
        if !control.is_empty() {
            sys::write_memory(pid, header.control, control).map_err(|_| libc::EFAULT)?;
        }
        let control_length = (control.len() as u64).to_ne_bytes();
        sys::write_memory(pid, message + MSG_CONTROLLEN as u64, &control_length)
            .and_then(|()| {
                sys::write_memory(
                    pid,
                    message + MSG_FLAGS as u64,
                    &received.flags.to_ne_bytes(),
                )
            })
            .map_err(|_| libc::EFAULT)?;
        Ok(Some(received.received))
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

/// The datagram of the program's `msghdr` at `message` on socket `fd`: `None` when it names no
/// address (a connected socket's) or cannot be read whole.
fn read_datagram(pid: u32, fd: i32, message: u64, flags: i32) -> Option<Datagram> {
    let header = MessageHeader::read(pid, message)?;
    if header.name == 0 || header.control_length > MAX_CONTROL {
        return None;
    }
    let destination = read_address(pid, header.name, u64::from(header.name_length))?;
    let payload = gather(pid, header.iov, header.iov_count)?;
    let mut control = vec![0u8; header.control_length];
    if !control.is_empty()
        && sys::read_memory(pid, header.control, &mut control).ok()? != control.len()
    {
        return None;
    }
    Some(Datagram {
        fd,
        destination,
        payload,
        control,
        flags,
    })
}

/// The program's `iovec` array at `iov` (`count` entries): each buffer's address and length;
/// `None` when unreadable.
fn buffers(pid: u32, iov: u64, count: usize) -> Option<Vec<(u64, usize)>> {
    let mut vectors = vec![0u8; count * 16];
    if sys::read_memory(pid, iov, &mut vectors).ok()? != vectors.len() {
        return None;
    }
    vectors
        .chunks_exact(16)
        .map(|vector| {
            let base = u64::from_ne_bytes(vector[..8].try_into().ok()?);
            let length = u64::from_ne_bytes(vector[8..].try_into().ok()?);
            Some((base, usize::try_from(length).ok()?))
        })
        .collect()
}

/// The bytes of the program's `iovec` array at `iov` (`count` entries), joined; `None` when
/// unreadable or larger than a datagram.
fn gather(pid: u32, iov: u64, count: usize) -> Option<Vec<u8>> {
    if count > MAX_IOV {
        return None;
    }
    let mut payload = Vec::new();
    for (base, length) in buffers(pid, iov, count)? {
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

/// The fields of a program's `struct msghdr` that `recvmsg` uses.
struct MessageHeader {
    name: u64,
    name_length: u32,
    iov: u64,
    iov_count: usize,
    control: u64,
    control_length: usize,
}

impl MessageHeader {
    /// The header at `address` in the program; `None` when unreadable.
    fn read(pid: u32, address: u64) -> Option<Self> {
        let mut header = [0u8; MSGHDR_SIZE];
        if sys::read_memory(pid, address, &mut header).ok()? != MSGHDR_SIZE {
            return None;
        }
        let word =
            |offset: usize| u64::from_ne_bytes(header[offset..offset + 8].try_into().unwrap());
        Some(Self {
            name: word(MSG_NAME),
            name_length: u32::from_ne_bytes(
                header[MSG_NAMELEN..MSG_NAMELEN + 4].try_into().unwrap(),
            ),
            iov: word(MSG_IOV),
            iov_count: usize::try_from(word(MSG_IOVLEN)).ok()?,
            control: word(MSG_CONTROL),
            control_length: usize::try_from(word(MSG_CONTROLLEN)).ok()?,
        })
    }
}
