//! Handing open files to layers on this machine (see `mirrord_protocol::fd_channel`).
//!
//! When the session runs the agent on the user's machine, the agent also listens on an abstract
//! unix socket (abstract: nothing to clean up on disk, and gone with the agent). A layer connects,
//! says hello with the session token, and asks to open files; each file is opened exactly as for
//! the intproxy (inside the target's root, `RESOLVE_IN_ROOT`) and its descriptor is passed back
//! with `SCM_RIGHTS`, after which the agent closes its own copy. Directories are refused (the
//! layer then opens them the usual way): a directory descriptor would let `openat` relative to it
//! resolve `..` and absolute symlinks outside the target's root.
//!
//! Outgoing connections are served here too ([`crate::outgoing_fd`]): the passed descriptor is a
//! socket of the target's network namespace; and so are stolen connections parked for a handover
//! ([`crate::incoming::handover`]): the passed descriptor is the remote peer's connection.
//!
//! The handshake runs on the agent's runtime, with a deadline and at most a few connections at a
//! time in it (nothing unauthenticated holds a thread); an authenticated connection's requests are
//! served with blocking I/O on the runtime's bounded pool of blocking threads (layers open one
//! connection per file).

use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::sync::Arc;
use std::time::Duration;

use mirrord_protocol::fd_channel::{FdReply, FdRequest};
use mirrord_protocol::files::{OpenFlags, TargetPath};
use mirrord_protocol::frame::{LENGTH_PREFIX_LEN, decode_payload};
use mirrord_protocol::{
    Hello, HelloReply, ProtocolVersion, ReadFrameError, RemoteError, RemoteResult, encode,
    read_frame,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::AgentContext;

/// How long a connection may sit between two frames before the agent drops it.
const IDLE_LIMIT: Duration = Duration::from_secs(30);
/// How long a client has to finish its hello, from the moment it was accepted.
const HELLO_DEADLINE: Duration = Duration::from_secs(3);
/// Connections that may be saying hello at once; the others wait in the listen backlog.
const MAX_HANDSHAKES: usize = 32;
/// The largest hello frame accepted (a hello is a token, a version and a client kind).
const MAX_HELLO_LEN: usize = 4096;

/// Listens on the abstract socket `name` and serves it on the agent's runtime. Must be called
/// inside the runtime (see `main.rs`).
pub(crate) fn start(name: &str, context: Arc<AgentContext>) -> io::Result<()> {
    let address = SocketAddr::from_abstract_name(name.as_bytes())?;
    let listener = UnixListener::bind_addr(&address)?;
    listener.set_nonblocking(true)?;
    let listener = tokio::net::UnixListener::from_std(listener)?;
    tokio::spawn(accept(listener, context));
    Ok(())
}

/// Accepts clients: at most `MAX_HANDSHAKES` saying hello at once, each with `HELLO_DEADLINE`
/// for it; an authenticated client's requests are then served on the runtime's (bounded) pool of
/// blocking threads, not on a thread of its own.
async fn accept(listener: tokio::net::UnixListener, context: Arc<AgentContext>) {
    let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(permit) = Arc::clone(&handshakes).acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::debug!(%error, "accepting a file-descriptor client failed");
                continue;
            }
        };
        let context = Arc::clone(&context);
        tokio::spawn(async move {
            let mut stream = stream;
            let welcomed = tokio::time::timeout(HELLO_DEADLINE, handshake(&mut stream, &context))
                .await
                .unwrap_or(false);
            drop(permit);
            if !welcomed {
                return;
            }
            let Ok(stream) = stream.into_std() else {
                return;
            };
            let _ = tokio::task::spawn_blocking(move || serve(stream, &context)).await;
        });
    }
}

/// Reads the hello (exactly its frame: nothing after it is consumed) and answers it; whether the
/// client was welcomed.
async fn handshake(stream: &mut tokio::net::UnixStream, context: &AgentContext) -> bool {
    let mut prefix = [0u8; LENGTH_PREFIX_LEN];
    if stream.read_exact(&mut prefix).await.is_err() {
        return false;
    }
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_HELLO_LEN {
        tracing::debug!(
            len,
            "refused a file-descriptor client: its hello is too long"
        );
        return false;
    }
    let mut payload = vec![0u8; len];
    if stream.read_exact(&mut payload).await.is_err() {
        return false;
    }
    let Ok(hello) = decode_payload::<Hello>(&payload) else {
        return false;
    };
    let reply = hello.answer(ProtocolVersion::CURRENT, &context.token);
    if let HelloReply::Refused { reason } = &reply {
        tracing::info!(%reason, "refused a file-descriptor client");
    }
    let welcome = matches!(reply, HelloReply::Welcome { .. });
    let Ok(frame) = encode(&reply) else {
        return false;
    };
    stream.write_all(&frame).await.is_ok() && welcome
}

/// One authenticated connection (blocking): open requests until the client closes.
fn serve(mut stream: UnixStream, context: &AgentContext) {
    if stream.set_nonblocking(false).is_err() {
        return;
    }
    let _ = stream.set_read_timeout(Some(IDLE_LIMIT));
    let _ = stream.set_write_timeout(Some(IDLE_LIMIT));
    loop {
        let request = match read_frame::<FdRequest, _>(&mut stream) {
            Ok(request) => request,
            Err(ReadFrameError::Closed) => return,
            Err(error) => {
                tracing::debug!(%error, "file-descriptor client dropped");
                return;
            }
        };
        let answer = match request {
            FdRequest::Open { path, flags, mode } => {
                open(context, &path, flags, mode).map(|fd| match fd {
                    Some(fd) => (FdReply::Passed, Some(fd)),
                    None => (FdReply::Directory, None),
                })
            }
            FdRequest::Connect { remote } => {
                crate::outgoing_fd::connect_inet(context, remote).map(|(r, fd)| (r, Some(fd)))
            }
            FdRequest::UnixConnect { path } => {
                crate::outgoing_fd::connect_unix(context, &path).map(|(r, fd)| (r, Some(fd)))
            }
            FdRequest::TakeIncoming {
                remote_peer,
                destination,
            } => take_incoming(context, remote_peer, destination),
        };
        let (reply, fd) = match answer {
            Ok((reply, fd)) => (Ok(reply), fd),
            Err(error) => (Err(error), None),
        };
        if send(&mut stream, &reply, fd.as_ref()).is_err() {
            return;
        }
    }
}

/// The socket of a stolen connection parked for a handover (see [`crate::incoming::handover`]).
fn take_incoming(
    context: &AgentContext,
    remote_peer: std::net::SocketAddr,
    destination: std::net::SocketAddr,
) -> RemoteResult<(FdReply, Option<OwnedFd>)> {
    context
        .handover
        .as_ref()
        .and_then(|handover| handover.take(remote_peer, destination))
        .map(|stream| (FdReply::Connected, Some(OwnedFd::from(stream))))
        .ok_or_else(|| {
            RemoteError::new(
                mirrord_protocol::ErrorCode::NotFound,
                format!("no stolen connection from {remote_peer} to {destination} is waiting"),
            )
        })
}

/// Opens the requested file; `None` for a directory.
fn open(
    context: &AgentContext,
    path: &TargetPath,
    flags: OpenFlags,
    mode: u32,
) -> RemoteResult<Option<OwnedFd>> {
    let file = context
        .root
        .open_file(path.as_bytes(), flags, mode)
        .map_err(|error| RemoteError::from(&error))?;
    let kind = file
        .metadata()
        .map_err(|error| RemoteError::from(&error))?
        .file_type();
    if kind.is_dir() {
        return Ok(None);
    }
    Ok(Some(OwnedFd::from(file)))
}

/// Writes `reply` as one frame, with `fd` attached to its first byte.
fn send(
    stream: &mut UnixStream,
    reply: &RemoteResult<FdReply>,
    fd: Option<&OwnedFd>,
) -> io::Result<()> {
    let frame = encode(reply).map_err(io::Error::other)?;
    let Some(fd) = fd else {
        return stream.write_all(&frame);
    };
    let sent = send_with_fd(stream, &frame, fd)?;
    stream.write_all(&frame[sent..])
}

/// One `sendmsg` of (a prefix of) `bytes` carrying `fd` as `SCM_RIGHTS`; returns how much was sent.
fn send_with_fd(stream: &UnixStream, bytes: &[u8], fd: &OwnedFd) -> io::Result<usize> {
    let raw = fd.as_raw_fd();
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
    let mut control = vec![0u8; space];
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // SAFETY: `msghdr` is a plain C struct for which all-zero bytes are a valid value.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = &raw mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    message.msg_controllen = space;
    // SAFETY: `message` points at `control`, which has room for one header and one int (CMSG_SPACE
    // above), so CMSG_FIRSTHDR is non-null and CMSG_DATA stays inside `control`.
    unsafe {
        let header = libc::CMSG_FIRSTHDR(&raw const message);
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(header).cast::<libc::c_int>(), raw);
    }
    loop {
        // SAFETY: `message` and everything it points at (`iov` → `bytes`, `control`) outlive the
        // call; the kernel only reads them.
        let sent =
            unsafe { libc::sendmsg(stream.as_raw_fd(), &raw const message, libc::MSG_NOSIGNAL) };
        if sent >= 0 {
            return Ok(sent as usize);
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}
