//! Sockets: the calls the supervisor makes on its copies of the program's sockets (kind, name,
//! `connect`, `bind`, `listen`, `accept`, `sendto`, blocking mode). Part of [`super`], under the
//! same rules: every function is safe to call.

use std::{
    io,
    mem::size_of,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
};

/// A socket's `SO_DOMAIN` and `SO_TYPE`.
pub(crate) fn socket_kind(fd: BorrowedFd<'_>) -> io::Result<(i32, i32)> {
    let option = |name: libc::c_int| -> io::Result<i32> {
        let mut value: libc::c_int = 0;
        let mut length = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `length` bytes into `value`, alive and writable.
        let result = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                name,
                (&raw mut value).cast(),
                &raw mut length,
            )
        };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(value)
    };
    Ok((option(libc::SO_DOMAIN)?, option(libc::SO_TYPE)?))
}

/// `connect(2)` of a socket to `address` (an IPv4 address given to an IPv6 socket is mapped).
pub(crate) fn connect(
    fd: BorrowedFd<'_>,
    domain: i32,
    address: std::net::SocketAddr,
) -> io::Result<()> {
    // SAFETY: connect reads the address within the length it is given and keeps no pointer to it.
    unsafe { call_with_sockaddr(libc::connect, fd, domain, address) }
}

/// A system call of the `connect`/`bind` shape, given `address` as the socket's domain spells it.
///
/// # Safety
/// `call` must read at most the given length of socket address from the pointer it gets, and keep
/// no pointer to it after it returns (`connect` and `bind` do both).
unsafe fn call_with_sockaddr(
    call: unsafe extern "C" fn(libc::c_int, *const libc::sockaddr, libc::socklen_t) -> libc::c_int,
    fd: BorrowedFd<'_>,
    domain: i32,
    address: std::net::SocketAddr,
) -> io::Result<()> {
    let bytes = crate::net::sockaddr_bytes(address, domain)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EAFNOSUPPORT))?;
    // SAFETY: `bytes` holds `bytes.len()` bytes of socket address and lives through the call, which
    // reads no more than that and keeps no pointer (this function's contract); `fd` is borrowed
    // for the call.
    let result = unsafe {
        call(
            fd.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len() as libc::socklen_t,
        )
    };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `getsockname(2)` of an `AF_INET`/`AF_INET6` socket.
pub(crate) fn socket_name(fd: BorrowedFd<'_>) -> io::Result<std::net::SocketAddr> {
    let mut storage = [0u8; 128];
    let mut length = storage.len() as libc::socklen_t;
    // SAFETY: getsockname writes at most `length` bytes into `storage`, alive and writable.
    let result =
        unsafe { libc::getsockname(fd.as_raw_fd(), storage.as_mut_ptr().cast(), &raw mut length) };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    crate::net::parse_sockaddr(&storage[..(length as usize).min(storage.len())])
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EAFNOSUPPORT))
}

/// `listen(2)`.
pub(crate) fn listen(fd: BorrowedFd<'_>, backlog: i32) -> io::Result<()> {
    // SAFETY: listen takes integers only.
    if unsafe { libc::listen(fd.as_raw_fd(), backlog) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The inode number of an open file (sockets have one each, unique while they live).
pub(crate) fn inode(fd: BorrowedFd<'_>) -> io::Result<u64> {
    // SAFETY: `stat` is a plain C struct; all-zero bytes are a valid value.
    let mut status: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes one `stat` into `status`, alive and writable for the call.
    if unsafe { libc::fstat(fd.as_raw_fd(), &raw mut status) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(status.st_ino)
}

/// Whether the open file has `O_NONBLOCK` set (shared by every copy of the descriptor).
pub(crate) fn is_nonblocking(fd: BorrowedFd<'_>) -> io::Result<bool> {
    // SAFETY: F_GETFL takes no argument and returns the status flags or -1.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(flags & libc::O_NONBLOCK != 0)
}

/// `bind(2)` of a socket to `address` (an IPv4 address given to an IPv6 socket is mapped).
pub(crate) fn bind(
    fd: BorrowedFd<'_>,
    domain: i32,
    address: std::net::SocketAddr,
) -> io::Result<()> {
    // SAFETY: bind reads the address within the length it is given and keeps no pointer to it.
    unsafe { call_with_sockaddr(libc::bind, fd, domain, address) }
}

/// `sendmsg(2)` of one datagram to `address`, with `control` (none when empty); the number of
/// bytes sent.
pub(crate) fn send_message(
    fd: BorrowedFd<'_>,
    payload: &[u8],
    control: &[u8],
    flags: i32,
    domain: i32,
    address: std::net::SocketAddr,
) -> io::Result<usize> {
    let mut bytes = crate::net::sockaddr_bytes(address, domain)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EAFNOSUPPORT))?;
    let mut part = libc::iovec {
        iov_base: payload.as_ptr().cast_mut().cast(),
        iov_len: payload.len(),
    };
    let control = (control.as_ptr().cast_mut(), control.len());
    let header = message_header(&mut bytes, &mut part, control);
    // SAFETY: sendmsg only reads through `header`: `msg_namelen` bytes of `bytes`, `iov_len`
    // bytes of `payload` and `msg_controllen` bytes of `control`, all alive for the call.
    let sent = unsafe { libc::sendmsg(fd.as_raw_fd(), &raw const header, flags) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}

/// `accept4(2)`: the new connection (close-on-exec here, `SOCK_NONBLOCK` as `flags` say) and its
/// peer.
pub(crate) fn accept(
    fd: BorrowedFd<'_>,
    flags: i32,
) -> io::Result<(OwnedFd, Option<std::net::SocketAddr>)> {
    let mut storage = [0u8; 128];
    let mut length = storage.len() as libc::socklen_t;
    let flags = (flags & libc::SOCK_NONBLOCK) | libc::SOCK_CLOEXEC;
    // SAFETY: accept4 writes at most `length` bytes of address into `storage`, alive and
    // writable, and returns a new descriptor or -1.
    let accepted = unsafe {
        libc::accept4(
            fd.as_raw_fd(),
            storage.as_mut_ptr().cast(),
            &raw mut length,
            flags,
        )
    };
    if accepted < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor, owned by nothing else.
    let accepted = unsafe { OwnedFd::from_raw_fd(accepted) };
    let peer = crate::net::parse_sockaddr(&storage[..(length as usize).min(storage.len())]);
    Ok((accepted, peer))
}

/// `getpeername(2)` of an `AF_INET`/`AF_INET6` socket.
pub(crate) fn peer_name(fd: BorrowedFd<'_>) -> io::Result<std::net::SocketAddr> {
    let mut storage = [0u8; 128];
    let mut length = storage.len() as libc::socklen_t;
    // SAFETY: getpeername writes at most `length` bytes into `storage`, alive and writable.
    let result =
        unsafe { libc::getpeername(fd.as_raw_fd(), storage.as_mut_ptr().cast(), &raw mut length) };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    crate::net::parse_sockaddr(&storage[..(length as usize).min(storage.len())])
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EAFNOSUPPORT))
}

/// `recvfrom(2)` into `buffer` with `flags`: what the call returned (the datagram's full length
/// with `MSG_TRUNC`) and the sender, when it is an IPv4/IPv6 address.
pub(crate) fn receive_from(
    fd: BorrowedFd<'_>,
    buffer: &mut [u8],
    flags: i32,
) -> io::Result<(usize, Option<std::net::SocketAddr>)> {
    let mut storage = [0u8; 128];
    let mut length = storage.len() as libc::socklen_t;
    // SAFETY: recvfrom writes at most `buffer.len()` bytes into `buffer` and at most `length`
    // bytes of address into `storage`, both alive and writable for the call.
    let received = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            flags,
            storage.as_mut_ptr().cast(),
            &raw mut length,
        )
    };
    if received < 0 {
        return Err(io::Error::last_os_error());
    }
    let source = crate::net::parse_sockaddr(&storage[..(length as usize).min(storage.len())]);
    Ok((received as usize, source))
}

/// A `msghdr` naming `name`, the one buffer `part` and the control buffer `control` (address
/// and length; none when the length is 0). It only holds the pointers: whoever passes it to the
/// kernel keeps the three alive for the call.
fn message_header(
    name: &mut [u8],
    part: &mut libc::iovec,
    control: (*mut u8, usize),
) -> libc::msghdr {
    // SAFETY: `msghdr` is a plain C struct; all zeroes is a valid (empty) value.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_name = name.as_mut_ptr().cast();
    header.msg_namelen = name.len() as libc::socklen_t;
    header.msg_iov = part;
    header.msg_iovlen = 1;
    if control.1 != 0 {
        header.msg_control = control.0.cast();
        header.msg_controllen = control.1;
    }
    header
}

/// What one `recvmsg(2)` returned.
#[derive(Debug)]
pub(crate) struct Message {
    /// The call's value: bytes received (the datagram's full length with `MSG_TRUNC`).
    pub(crate) received: usize,
    /// The sender, when it is an IPv4/IPv6 address.
    pub(crate) source: Option<std::net::SocketAddr>,
    /// How many bytes of `control` the kernel filled.
    pub(crate) control_length: usize,
    /// The message's `msg_flags` (`MSG_TRUNC`, `MSG_CTRUNC`, ...).
    pub(crate) flags: i32,
}

/// `recvmsg(2)` into one `buffer` and `control` with `flags`.
pub(crate) fn receive_message(
    fd: BorrowedFd<'_>,
    buffer: &mut [u8],
    control: &mut [u8],
    flags: i32,
) -> io::Result<Message> {
    let mut storage = [0u8; 128];
    let mut part = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: buffer.len(),
    };
    let mut header = message_header(
        &mut storage,
        &mut part,
        (control.as_mut_ptr(), control.len()),
    );
    // SAFETY: recvmsg writes at most `msg_namelen` bytes into `storage`, at most `iov_len` bytes
    // into `buffer` and at most `msg_controllen` bytes into `control`, all alive and writable for
    // the call, and updates `header` itself, which is alive and writable.
    let received = unsafe { libc::recvmsg(fd.as_raw_fd(), &raw mut header, flags) };
    if received < 0 {
        return Err(io::Error::last_os_error());
    }
    let name_length = (header.msg_namelen as usize).min(storage.len());
    Ok(Message {
        received: received as usize,
        source: crate::net::parse_sockaddr(&storage[..name_length]),
        control_length: header.msg_controllen.min(control.len()),
        flags: header.msg_flags,
    })
}

/// A socket's `SO_RCVTIMEO`: how long a blocking receive or `accept` waits (`None`: forever).
pub(crate) fn receive_timeout(fd: BorrowedFd<'_>) -> io::Result<Option<std::time::Duration>> {
    let mut value = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    let mut length = size_of::<libc::timeval>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `length` bytes (one `timeval`) into `value`, alive and
    // writable.
    let result = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw mut value).cast(),
            &raw mut length,
        )
    };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    let timeout = std::time::Duration::from_secs(value.tv_sec.max(0) as u64)
        + std::time::Duration::from_micros(value.tv_usec.max(0) as u64);
    Ok((!timeout.is_zero()).then_some(timeout))
}

/// Waits until one of `sockets` is readable (or has an error or hang-up to report), at most
/// `timeout` (`None`: forever). Interrupted by a signal, it returns early like a timeout.
pub(crate) fn wait_readable(
    sockets: &[BorrowedFd<'_>],
    timeout: Option<std::time::Duration>,
) -> io::Result<()> {
    let mut entries: Vec<libc::pollfd> = sockets
        .iter()
        .map(|socket| libc::pollfd {
            fd: socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let timeout = timeout.map_or(-1, |timeout| {
        i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX)
    });
    // SAFETY: poll reads and writes `entries.len()` `pollfd`s at the pointer, which `entries`
    // holds alive and writable for the call; the descriptors are borrowed for it.
    let result =
        unsafe { libc::poll(entries.as_mut_ptr(), entries.len() as libc::nfds_t, timeout) };
    if result < 0 {
        let error = io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::EINTR) {
            return Err(error);
        }
    }
    Ok(())
}

/// Whether `socket` is readable now (for a listener: a connection is waiting).
pub(crate) fn is_readable(socket: BorrowedFd<'_>) -> bool {
    let mut entry = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll reads and writes the one `pollfd` at the pointer, alive for the call.
    let result = unsafe { libc::poll(&raw mut entry, 1, 0) };
    result > 0 && entry.revents != 0
}
