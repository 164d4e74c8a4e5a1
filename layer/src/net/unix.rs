//! Unix stream `connect`s to the target's sockets (`outgoing.unix_streams`): for targets on this
//! machine the process gets the target's own socket from the agent ([`super::native`]); for
//! cluster targets the intproxy relays from a unix socket of its own, to which the process's
//! socket is connected, and `getpeername` keeps naming the target's path.

use std::{ffi::c_int, os::fd::RawFd};

use mirrord_protocol::{
    LayerRequest, LayerResponse, fd_channel::FdRequest, files::TargetPath,
    outgoing::OutgoingUnixConnectRequest,
};

use super::{SOCKETS, native};
use crate::{
    connection::{request, unexpected},
    detour::{Outcome, errno, lock},
    fd_table::{FDS, FdEntry, SocketInfo},
    process, setup,
};

/// A unix stream `connect` to `path`: to the target's socket when `unix_streams` matches.
pub(super) fn connect_unix(
    fd: RawFd,
    path: &[u8],
    local: impl FnOnce(&[u8]) -> c_int,
) -> Outcome<c_int> {
    let Some(layer) = setup::layer() else {
        return Outcome::Bypass("inactive");
    };
    if !layer.outgoing.sends_unix(path) {
        return Outcome::Bypass("a local unix socket");
    }
    let mut kind: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: `kind` and `len` are a writable int and its size, as getsockopt(2) requires.
    let typed = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&raw mut kind).cast(),
            &mut len,
        )
    };
    if typed != 0 || kind != libc::SOCK_STREAM {
        return Outcome::Bypass("not a unix stream socket");
    }
    if process::in_borrowed_memory() {
        return Outcome::Bypass("vfork child");
    }
    let path = TargetPath::from_bytes(path);
    if layer.agent_sockets.is_some() {
        return native::connect(fd, FdRequest::UnixConnect { path }, false);
    }
    // Cluster targets: the agent connects inside the target, the intproxy relays from a unix
    // socket of its own, to which the process's socket is connected.
    let relay = match request(LayerRequest::OutgoingUnixConnect(
        OutgoingUnixConnectRequest { path: path.clone() },
    )) {
        Ok(LayerResponse::OutgoingUnixConnected(connected)) => connected.intproxy_path,
        Ok(other) => return Outcome::Fail(unexpected(&other).errno()),
        Err(error) => {
            tracing::debug!(%error, %path, "unix stream connection refused");
            return Outcome::Fail(error.errno());
        }
    };
    let Some(relay) = unix_sockaddr(relay.as_bytes()) else {
        return Outcome::Fail(libc::ENAMETOOLONG);
    };
    tracing::debug!(%path, "unix stream connected through the target");
    if local(&relay) != 0 {
        return Outcome::Fail(errno());
    }
    lock(&SOCKETS).entry(fd).or_default().unix_peer = unix_sockaddr(path.as_bytes());
    let info = SocketInfo {
        domain: libc::AF_UNIX as u8,
        kind: libc::SOCK_STREAM as u8,
        managed: true,
    };
    if let Ok(Some(stale)) = FDS.set(fd, FdEntry::Socket(info)) {
        crate::files::forget_entry(fd, stale);
    }
    Outcome::Handled(0)
}

/// A `sockaddr_un` naming the file `path`; `None` when it is too long for one.
pub(super) fn unix_sockaddr(path: &[u8]) -> Option<Vec<u8>> {
    let capacity = std::mem::size_of::<libc::sockaddr_un>() - 2;
    if path.is_empty() || path.len() >= capacity || path.contains(&0) {
        return None;
    }
    let mut bytes = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
    bytes.extend_from_slice(path);
    bytes.push(0);
    Some(bytes)
}
