//! The real peer for a blocking `accept`/`accept4` (a static C server's) on a subscribed
//! listener, and for `getpeername` on a connection the supervisor placed.
//!
//! A blocking `accept` cannot be done by a worker (it would wait for a connection), so the worker
//! parks it with the waiter (`waits.rs`), which accepts on the supervisor's copy of the listener
//! once a connection is waiting, asks the intproxy who connected to the target, writes that
//! address into the program's buffer and places the connection with `ADDFD`+`SEND`, as
//! `incoming.rs` does for a non-blocking listener. A placed connection's own peer is still the
//! intproxy's end, so it is remembered (by socket inode, with that end) and `getpeername` on it
//! answers the real peer; any other `getpeername` runs as is.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    os::fd::{AsFd, BorrowedFd},
    sync::Mutex,
};

use crate::{
    net::sockaddr_bytes,
    serve::{Outcome, Worker},
    sys::{self, Notification},
    waits::{Then, Wait},
};

/// How many placed connections are remembered for `getpeername` (the oldest are forgotten).
const REMEMBERED: usize = 4096;

/// The intproxy's end of a placed connection and the real peer it stands for.
type Ends = (SocketAddr, SocketAddr);

/// Connections placed with a real peer, by socket inode, and the order they were placed in.
#[derive(Debug, Default)]
pub(crate) struct Placed {
    peers: Mutex<(HashMap<u64, Ends>, VecDeque<u64>)>,
}

impl Placed {
    fn remember(&self, inode: u64, intproxy_end: SocketAddr, real: SocketAddr) {
        let mut guard = self
            .peers
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let (peers, order) = &mut *guard;
        if peers.insert(inode, (intproxy_end, real)).is_none() {
            order.push_back(inode);
        }
        while order.len() > REMEMBERED {
            if let Some(oldest) = order.pop_front() {
                peers.remove(&oldest);
            }
        }
    }

    fn get(&self, inode: u64) -> Option<Ends> {
        let guard = self
            .peers
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        guard.0.get(&inode).copied()
    }

    fn is_empty(&self) -> bool {
        let guard = self
            .peers
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        guard.0.is_empty()
    }
}

impl Worker {
    /// `accept`/`accept4` that `incoming.rs` left to the kernel: parked when it is a blocking
    /// listener subscribed for the target, else run as is.
    pub(crate) fn accept_blocking(&mut self, call: &Notification) -> Outcome {
        let Some(incoming) = self.shared.incoming.as_ref() else {
            return Outcome::Continue;
        };
        let Ok(socket) = sys::take_thread_descriptor(call.pid, call.args[0] as i32) else {
            return Outcome::Continue;
        };
        if sys::is_nonblocking(socket.as_fd()).unwrap_or(true) {
            return Outcome::Continue;
        }
        let Ok(inode) = sys::inode(socket.as_fd()) else {
            return Outcome::Continue;
        };
        if !incoming.subscribed(inode) {
            return Outcome::Continue;
        }
        if !self.shared.listener.id_valid(call.id) {
            return Outcome::Gone;
        }
        self.shared
            .waits
            .park(Wait::new(*call, socket, Then::Accept))
    }

    /// The parked `accept` on `listener` once a connection waits; `None` while none does.
    pub(crate) fn accept_ready(
        &mut self,
        call: &Notification,
        listener: BorrowedFd<'_>,
    ) -> Option<Outcome> {
        let [_, address, length_address, flags, ..] = call.args;
        let flags = if libc::c_long::from(call.nr) == libc::SYS_accept4 {
            flags as i32
        } else {
            0
        };
        // Only the waiter accepts on a blocking listener, so a waiting connection stays there.
        if !sys::is_readable(listener) {
            return None;
        }
        let (connection, peer) = match sys::accept(listener, flags) {
            Ok(accepted) => accepted,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return None,
            Err(error) => return Some(Outcome::Fail(error.raw_os_error().unwrap_or(libc::EIO))),
        };
        let Ok((domain, _)) = sys::socket_kind(listener) else {
            return Some(Outcome::Fail(libc::EIO));
        };
        let real = peer.map(|peer| (peer, self.real_peer(peer).remote_peer));
        if let Some((peer, real)) = real
            && peer != real
            && let Ok(inode) = sys::inode(connection.as_fd())
        {
            self.shared.placed.remember(inode, peer, real);
        }
        if address != 0
            && let Some((_, real)) = real
            && let Err(errno) = write_address(call.pid, address, length_address, real, domain)
        {
            return Some(Outcome::Fail(errno));
        }
        Some(Outcome::Descriptor {
            fd: connection,
            cloexec: flags & libc::SOCK_CLOEXEC != 0,
        })
    }

    /// `getpeername(fd, address, length)`: the real peer of a connection placed by the
    /// supervisor, else as is.
    pub(crate) fn getpeername(&mut self, call: &Notification) -> Outcome {
        if self.shared.placed.is_empty() {
            return Outcome::Continue;
        }
        let [fd, address, length_address, ..] = call.args;
        let Ok(socket) = sys::take_thread_descriptor(call.pid, fd as i32) else {
            return Outcome::Continue;
        };
        let Ok(inode) = sys::inode(socket.as_fd()) else {
            return Outcome::Continue;
        };
        let Some((intproxy_end, real)) = self.shared.placed.get(inode) else {
            return Outcome::Continue;
        };
        // An inode number is reused only after its socket is gone: check it is still ours.
        if sys::peer_name(socket.as_fd()).ok() != Some(intproxy_end) {
            return Outcome::Continue;
        }
        let Ok((domain, _)) = sys::socket_kind(socket.as_fd()) else {
            return Outcome::Continue;
        };
        if !self.shared.listener.id_valid(call.id) {
            return Outcome::Gone;
        }
        match write_address(call.pid, address, length_address, real, domain) {
            Ok(()) => Outcome::Value(0),
            Err(errno) => Outcome::Fail(errno),
        }
    }
}

/// Writes `peer` as a socket address of `domain` into the program's buffer at `address`, as the
/// kernel does: at most the capacity in `*length_address`, then the full length there. `Err` is
/// the errno.
pub(crate) fn write_address(
    pid: u32,
    address: u64,
    length_address: u64,
    peer: SocketAddr,
    domain: i32,
) -> Result<(), i32> {
    let Some(bytes) = sockaddr_bytes(peer, domain) else {
        return Ok(());
    };
    let mut capacity = [0u8; 4];
    if sys::read_memory(pid, length_address, &mut capacity).ok() != Some(4) {
        return Err(libc::EFAULT);
    }
    let capacity = i32::from_ne_bytes(capacity);
    let Ok(capacity) = usize::try_from(capacity) else {
        return Err(libc::EINVAL);
    };
    let written = bytes.len().min(capacity);
    let length = (bytes.len() as u32).to_ne_bytes();
    if sys::write_memory(pid, address, &bytes[..written]).is_err()
        || sys::write_memory(pid, length_address, &length).is_err()
    {
        return Err(libc::EFAULT);
    }
    Ok(())
}
