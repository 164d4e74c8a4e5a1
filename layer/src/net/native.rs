//! Outgoing connections as sockets of the target, for targets on this machine.
//!
//! When the agent runs next to the process (`$MIRRORD_LAYER_AGENT_FDS` is set), a stream `connect`
//! that goes to the target asks the agent for a socket made in the target's network namespace and
//! already connecting to the destination (`FdRequest::Connect`, or `FdRequest::UnixConnect` for the
//! unix sockets of `unix_streams`). The layer puts that socket in place of the process's own with
//! `dup3` — same descriptor number, the process's `O_NONBLOCK` and close-on-exec flags, and the
//! socket options it had set (`TCP_NODELAY`, keep-alive, time-outs, linger) — so every later call
//! is a plain system call on a socket of the target: the target's loopback is reachable, and
//! nothing is relayed (no added latency, full bandwidth).
//!
//! `connect` then behaves as the kernel's: a blocking socket waits until the connection is made
//! (or fails, with its errno), a non-blocking one returns `EINPROGRESS` and reports the outcome
//! through `SO_ERROR` once writable.

use std::{
    ffi::c_int,
    io::{self, Read},
    os::fd::{AsRawFd, OwnedFd, RawFd},
};

use mirrord_protocol::{
    ErrorCode, RemoteError, RemoteResult,
    fd_channel::{FdReply, FdRequest},
    read_frame, write_frame,
};

use crate::{
    detour::Outcome,
    files::native::{FIRST_READ, connect as connect_agent, failure, receive_with_fd},
    setup,
};

/// Socket options carried over to the target's socket: `(level, name, inet only)`.
const INT_OPTIONS: &[(c_int, c_int, bool)] = &[
    (libc::SOL_SOCKET, libc::SO_KEEPALIVE, false),
    (libc::SOL_SOCKET, libc::SO_OOBINLINE, false),
    (libc::SOL_SOCKET, libc::SO_PRIORITY, false),
    (libc::IPPROTO_TCP, libc::TCP_NODELAY, true),
    (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, true),
    (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, true),
    (libc::IPPROTO_TCP, libc::TCP_KEEPCNT, true),
    (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, true),
];

/// Whether `fd` is bound to an address of its own (then it keeps its local socket).
pub(crate) fn is_bound(fd: RawFd) -> bool {
    let mut storage = std::mem::MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: getsockname into a `sockaddr_storage` whose size `len` holds.
    let named = unsafe { libc::getsockname(fd, storage.as_mut_ptr().cast(), &mut len) };
    if named != 0 {
        return false;
    }
    // SAFETY: getsockname initialised the first `len` bytes (at most the storage's size).
    let bytes = unsafe {
        std::slice::from_raw_parts(
            storage.as_ptr().cast::<u8>(),
            (len as usize).min(std::mem::size_of::<libc::sockaddr_storage>()),
        )
    };
    super::parse_sockaddr(bytes).is_some_and(|address| address.port() != 0)
}

/// Replaces the process's socket `fd` with the target's socket for `request` and finishes
/// `connect` the way the kernel would for `fd`.
pub(crate) fn connect(fd: RawFd, request: FdRequest, inet: bool) -> Outcome<c_int> {
    let Some(layer) = setup::layer() else {
        return Outcome::Bypass("inactive");
    };
    let Some(socket) = layer.agent_sockets.as_deref() else {
        return Outcome::Bypass("no agent on this machine");
    };
    if crate::connection::agent_is_lost() {
        return Outcome::Fail(RemoteError::agent_lost("the agent was lost earlier").errno());
    }
    // SAFETY: fcntl(2) queries on the caller's descriptor; no pointers.
    let (status, descriptor) = unsafe {
        (
            libc::fcntl(fd, libc::F_GETFL),
            libc::fcntl(fd, libc::F_GETFD),
        )
    };
    if status < 0 || descriptor < 0 {
        return Outcome::Fail(libc::EBADF);
    }
    let options = read_options(fd, inet);
    let (reply, target_socket) = match exchange(socket, &layer.endpoint.token, request) {
        Ok(answer) => answer,
        Err(error) => {
            tracing::debug!(%error, "the target's socket could not be made");
            return Outcome::Fail(error.errno());
        }
    };
    let new = target_socket.as_raw_fd();
    for (level, name, value) in &options {
        set_int_option(new, *level, *name, *value);
    }
    // SAFETY: F_SETFL with the caller's own status flags on the descriptor we own; no pointers.
    unsafe { libc::fcntl(new, libc::F_SETFL, status) };
    let cloexec = if descriptor & libc::FD_CLOEXEC != 0 {
        libc::O_CLOEXEC
    } else {
        0
    };
    // SAFETY: both descriptors are open; dup3 atomically closes `fd` and makes it a copy of `new`,
    // which is what the process's later calls on `fd` must reach.
    if unsafe { libc::dup3(new, fd, cloexec) } < 0 {
        return Outcome::Fail(crate::detour::errno());
    }
    drop(target_socket);
    super::forget_state(fd);
    tracing::debug!(fd, ?reply, "the process's socket is now the target's");
    match reply {
        FdReply::Connecting if status & libc::O_NONBLOCK != 0 => Outcome::Fail(libc::EINPROGRESS),
        FdReply::Connecting => match wait_connected(fd) {
            0 => Outcome::Handled(0),
            error => Outcome::Fail(error),
        },
        _ => Outcome::Handled(0),
    }
}

/// One exchange on the agent's descriptor socket: the reply and the socket it passed.
fn exchange(
    socket: &str,
    token: &mirrord_protocol::SessionToken,
    request: FdRequest,
) -> Result<(FdReply, OwnedFd), RemoteError> {
    let mut stream = connect_agent(socket, token)
        .map_err(|error| failure(error, &format!("cannot reach the agent's socket @{socket}")))?;
    let mut round = || -> io::Result<(RemoteResult<FdReply>, Option<OwnedFd>)> {
        write_frame(&mut stream, &request).map_err(io::Error::other)?;
        let mut first = [0u8; FIRST_READ];
        let (count, fd) = receive_with_fd(&stream, &mut first, true)?;
        let mut reader = (&first[..count]).chain(&mut stream);
        let reply =
            read_frame::<RemoteResult<FdReply>, _>(&mut reader).map_err(io::Error::other)?;
        Ok((reply, fd))
    };
    let (reply, fd) = round().map_err(|error| failure(error, "the agent's socket failed"))?;
    match (reply?, fd) {
        (reply @ (FdReply::Connected | FdReply::Connecting), Some(fd)) => Ok((reply, fd)),
        (reply, _) => Err(RemoteError::new(
            ErrorCode::Protocol,
            format!("the agent answered {reply:?} to a connect, without a socket"),
        )),
    }
}

/// Waits until the connecting socket `fd` is writable; its `SO_ERROR` (0 when connected).
fn wait_connected(fd: RawFd) -> c_int {
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd for the call's duration.
        let ready = unsafe { libc::poll(&raw mut poll, 1, -1) };
        if ready > 0 {
            break;
        }
        let error = crate::detour::errno();
        if ready < 0 && error != libc::EINTR {
            return error;
        }
    }
    read_int_option(fd, libc::SOL_SOCKET, libc::SO_ERROR).unwrap_or(libc::EIO)
}

/// The options of [`INT_OPTIONS`] (and the time-outs and linger) whose value on `fd` differs from
/// a new socket's, as `(level, name, value)`; structured ones come back as their bytes.
fn read_options(fd: RawFd, inet: bool) -> Vec<(c_int, c_int, OptionValue)> {
    let mut options = Vec::new();
    for &(level, name, inet_only) in INT_OPTIONS {
        if inet_only && !inet {
            continue;
        }
        if let Some(value) = read_int_option(fd, level, name)
            && value != 0
        {
            options.push((level, name, OptionValue::Int(value)));
        }
    }
    for name in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        let mut value = libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        };
        if read_struct_option(fd, name, &mut value) && (value.tv_sec != 0 || value.tv_usec != 0) {
            options.push((libc::SOL_SOCKET, name, OptionValue::Time(value)));
        }
    }
    let mut linger = libc::linger {
        l_onoff: 0,
        l_linger: 0,
    };
    if read_struct_option(fd, libc::SO_LINGER, &mut linger) && linger.l_onoff != 0 {
        options.push((
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            OptionValue::Linger(linger),
        ));
    }
    options
}

/// A socket option's value.
#[derive(Clone, Copy)]
enum OptionValue {
    Int(c_int),
    Time(libc::timeval),
    Linger(libc::linger),
}

fn read_int_option(fd: RawFd, level: c_int, name: c_int) -> Option<c_int> {
    let mut value: c_int = 0;
    read_raw_option(fd, level, name, &mut value).then_some(value)
}

fn read_struct_option<T: Copy>(fd: RawFd, name: c_int, value: &mut T) -> bool {
    read_raw_option(fd, libc::SOL_SOCKET, name, value)
}

fn read_raw_option<T: Copy>(fd: RawFd, level: c_int, name: c_int, value: &mut T) -> bool {
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` is a writable `T` and `len` its size, as getsockopt(2) requires; every `T`
    // used here (int, timeval, linger) is plain data valid for any bytes.
    let result = unsafe { libc::getsockopt(fd, level, name, (value as *mut T).cast(), &mut len) };
    result == 0
}

fn set_int_option(fd: RawFd, level: c_int, name: c_int, value: OptionValue) {
    let set = |pointer: *const libc::c_void, len: usize| {
        // SAFETY: `pointer` points at a live value of `len` bytes for the call; the kernel reads it.
        unsafe { libc::setsockopt(fd, level, name, pointer, len as libc::socklen_t) }
    };
    let result = match value {
        OptionValue::Int(int) => set((&raw const int).cast(), std::mem::size_of::<c_int>()),
        OptionValue::Time(time) => set(
            (&raw const time).cast(),
            std::mem::size_of::<libc::timeval>(),
        ),
        OptionValue::Linger(linger) => set(
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>(),
        ),
    };
    if result != 0 {
        tracing::debug!(level, name, "a socket option could not be carried over");
    }
}
