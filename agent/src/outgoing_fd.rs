//! Outgoing connections as native sockets, for layers on this machine (see
//! `mirrord_protocol::fd_channel`).
//!
//! The socket is made on the namespace thread, so it belongs to the target's network namespace for
//! its whole life; its non-blocking `connect` is started here and the socket is passed to the layer
//! at once, connected or still connecting. The process then owns a socket of the target: its
//! loopback is the target's loopback, its reads and writes are plain system calls, and nothing is
//! relayed. Unix stream sockets are connected to the socket file found inside the target's root
//! (`RESOLVE_IN_ROOT`), named to `connect` as `/proc/self/fd/N`, so neither `..` nor a symlink can
//! reach a socket outside it.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use mirrord_protocol::fd_channel::FdReply;
use mirrord_protocol::files::TargetPath;
use mirrord_protocol::{RemoteError, RemoteResult};
use socket2::{SockAddr, Socket};

use crate::AgentContext;

/// A stream socket in the target's network namespace, connecting to `remote`.
pub(crate) fn connect_inet(
    context: &AgentContext,
    remote: SocketAddr,
) -> RemoteResult<(FdReply, OwnedFd)> {
    let domain = if remote.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let socket = context
        .namespace
        .socket_blocking(domain, libc::SOCK_STREAM)
        .map_err(|error| RemoteError::from(&error))?;
    start_connect(socket, &SockAddr::from(remote))
}

/// A unix stream socket connecting to the socket file at `path` inside the target's root.
pub(crate) fn connect_unix(
    context: &AgentContext,
    path: &TargetPath,
) -> RemoteResult<(FdReply, OwnedFd)> {
    let file = context
        .root
        .open_path(path.as_bytes())
        .map_err(|error| RemoteError::from(&error))?;
    let name = format!("/proc/self/fd/{}", file.as_raw_fd());
    let address = SockAddr::unix(&name).map_err(|error| RemoteError::from(&error))?;
    let socket = context
        .namespace
        .socket_blocking(libc::AF_UNIX, libc::SOCK_STREAM)
        .map_err(|error| RemoteError::from(&error))?;
    let started = start_connect(socket, &address);
    drop(file);
    started
}

/// Starts `connect` on the non-blocking `socket`: connected, in progress, or the error.
fn start_connect(socket: OwnedFd, address: &SockAddr) -> RemoteResult<(FdReply, OwnedFd)> {
    let socket = Socket::from(socket);
    loop {
        match socket.connect(address) {
            Ok(()) => return Ok((FdReply::Connected, socket.into())),
            Err(error) if error.raw_os_error() == Some(libc::EINPROGRESS) => {
                return Ok((FdReply::Connecting, socket.into()));
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(RemoteError::from(&error)),
        }
    }
}
