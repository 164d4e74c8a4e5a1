//! Remote files as native descriptors, for targets on this machine.
//!
//! When the agent runs next to the process (targets `pid/…` and `sandbox/…`), the session names
//! the agent's abstract unix socket in `$MIRRORD_LAYER_AGENT_FDS`. A remote `open` of anything but
//! a directory then asks the agent over that socket (see `mirrord_protocol::fd_channel`): the agent
//! opens the file inside the target's root and passes the descriptor itself, which the process
//! gets as the result of its `open`. Every later call on it — `read`, `write`, `lseek`, `fstat`,
//! `mmap`, `dup`, `close` — is then a plain system call on the target's file, untouched by the
//! layer.
//!
//! One connection per `open`: no state survives the call, so `fork`, threads and `exec` need no
//! care. A failure to reach the agent is the agent being gone, and fails the call (and every later
//! remote call) like any lost agent.

use std::{
    io::{self, Read},
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
        linux::net::SocketAddrExt,
        unix::net::{SocketAddr, UnixStream},
    },
};

use mirrord_protocol::{
    ClientKind, ErrorCode, Hello, HelloReply, ProtocolVersion, RemoteError, RemoteResult,
    SessionToken,
    fd_channel::{FdReply, FdRequest},
    files::{OpenFlags, TargetPath},
    read_frame, write_frame,
};

use crate::{connection, process};

/// Room for the first bytes of a reply (the whole reply, in practice).
pub(crate) const FIRST_READ: usize = 512;

/// Asks the agent at abstract socket `socket` to open `path`; `Ok(None)` when it is a directory
/// (open it the usual way then). The descriptor has `FD_CLOEXEC` when `flags` asks for it.
pub(crate) fn open(
    socket: &str,
    token: &SessionToken,
    path: &TargetPath,
    flags: OpenFlags,
    mode: u32,
) -> Result<Option<OwnedFd>, RemoteError> {
    let mut stream = connect(socket, token)
        .map_err(|error| failure(error, &format!("cannot reach the agent's socket @{socket}")))?;
    let mut exchange = || -> io::Result<(RemoteResult<FdReply>, Option<OwnedFd>)> {
        let request = FdRequest::Open {
            path: path.clone(),
            flags,
            mode,
        };
        write_frame(&mut stream, &request).map_err(io::Error::other)?;
        let mut first = [0u8; FIRST_READ];
        let (count, fd) = receive_with_fd(&stream, &mut first, flags.cloexec)?;
        let mut reader = (&first[..count]).chain(&mut stream);
        let reply =
            read_frame::<RemoteResult<FdReply>, _>(&mut reader).map_err(io::Error::other)?;
        Ok((reply, fd))
    };
    let (reply, fd) = exchange().map_err(|error| failure(error, "the agent's socket failed"))?;
    match (reply?, fd) {
        (FdReply::Passed, Some(fd)) => Ok(Some(fd)),
        (FdReply::Directory, None) => Ok(None),
        (reply, _) => Err(RemoteError::new(
            ErrorCode::Protocol,
            format!("the agent answered {reply:?} with a descriptor count that does not match"),
        )),
    }
}

/// The error for a failed exchange: the process being out of descriptors is its own errno (the
/// agent is fine, and a later `open` may succeed); anything else means the agent is gone.
pub(crate) fn failure(error: io::Error, what: &str) -> RemoteError {
    if matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
        return RemoteError::from(&error);
    }
    connection::mark_agent_lost();
    RemoteError::agent_lost(format!("{what}: {error}"))
}

/// Connects and says hello.
pub(crate) fn connect(socket: &str, token: &SessionToken) -> io::Result<UnixStream> {
    let address = SocketAddr::from_abstract_name(socket.as_bytes())?;
    let mut stream = UnixStream::connect_addr(&address)?;
    stream.set_read_timeout(Some(connection::IO_TIMEOUT))?;
    stream.set_write_timeout(Some(connection::IO_TIMEOUT))?;
    let hello = Hello::new(
        token.clone(),
        ClientKind::FdClient {
            pid: process::pid(),
        },
    );
    write_frame(&mut stream, &hello).map_err(io::Error::other)?;
    let reply: HelloReply = read_frame(&mut stream).map_err(io::Error::other)?;
    reply
        .check(ProtocolVersion::CURRENT)
        .map_err(io::Error::other)?;
    Ok(stream)
}

/// One `recvmsg` into `buffer`, taking at most one passed descriptor.
pub(crate) fn receive_with_fd(
    stream: &UnixStream,
    buffer: &mut [u8],
    cloexec: bool,
) -> io::Result<(usize, Option<OwnedFd>)> {
    // Aligned room for one control message with one int.
    let mut control = [0u64; 4];
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
    debug_assert!(space <= std::mem::size_of_val(&control));
    let mut iov = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: buffer.len(),
    };
    // SAFETY: `msghdr` is a plain C struct for which all-zero bytes are a valid value.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = &raw mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    message.msg_controllen = space;
    let flags = if cloexec { libc::MSG_CMSG_CLOEXEC } else { 0 };
    let count = loop {
        // SAFETY: `message` points at `iov` (→ `buffer`) and `control`, both alive and writable
        // for the call, with their true lengths.
        let count = unsafe { libc::recvmsg(stream.as_raw_fd(), &raw mut message, flags) };
        if count >= 0 {
            break count as usize;
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    };
    let mut received: Option<OwnedFd> = None;
    let mut extra = false;
    // SAFETY: `message` was filled by recvmsg; the CMSG_* macros walk its control buffer within
    // `msg_controllen`, and each SCM_RIGHTS payload holds ints the kernel just installed as fds of
    // this process, which nothing else owns.
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(&raw const message);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(header).cast::<libc::c_int>();
                let bytes = (*header).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for index in 0..bytes / std::mem::size_of::<libc::c_int>() {
                    let fd: RawFd = std::ptr::read_unaligned(data.add(index));
                    let owned = OwnedFd::from_raw_fd(fd);
                    if received.is_none() {
                        received = Some(owned);
                    } else {
                        extra = true;
                    }
                }
            }
            header = libc::CMSG_NXTHDR(&raw const message, header);
        }
    }
    if extra {
        return Err(io::Error::other(
            "the agent passed more than one descriptor",
        ));
    }
    if received.is_none() && message.msg_flags & libc::MSG_CTRUNC != 0 {
        // The kernel could not install the descriptor: this process has no free one.
        return Err(io::Error::from_raw_os_error(libc::EMFILE));
    }
    Ok((count, received))
}
