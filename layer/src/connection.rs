//! The process's connection to the intproxy: opened on the first remote call, one request in flight at a
//! time (a mutex around a blocking `TcpStream`), answered within [`IO_TIMEOUT`] or given up.
//!
//! - Per process: the connection remembers the pid it was opened for; a forked child (another pid, see
//!   [`crate::process`]) opens its own on its first remote call and says who its parent was, so the
//!   intproxy can tell the two apart. The child closes its inherited copy of the parent's socket and never
//!   touches the parent's lock (another thread may have held it at the fork).
//! - Failing fast: once the intproxy said the agent is lost ([`ProxyToLayer::AgentLost`]), or the
//!   connection broke, timed out or was refused, every later remote call fails at once with
//!   [`ErrorCode::AgentLost`] (the layer never reconnects within one process, and never hangs).
//! - The socket lives at a high fd with `FD_CLOEXEC`, and is registered in the fd table so that the user
//!   program cannot close or `dup2` over it by accident: the layer moves it out of the way first.

use std::{
    io,
    net::{SocketAddr, TcpStream},
    os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd},
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicI32, AtomicPtr, Ordering},
    },
    time::Duration,
};

use mirrord_protocol::{
    ClientKind, ErrorCode, Hello, HelloReply, LayerRequest, LayerResponse, LayerToProxy,
    ProtocolVersion, ProxyToLayer, RemoteError, RequestId, SessionToken,
    files::{FileRequest, FileResponse},
    read_frame, read_frame_with, write_frame,
};

use crate::{
    detour::lock,
    fd_table::{FDS, FdEntry},
    process,
};

/// How long one request may wait for its answer (and one frame for its bytes) before the connection is
/// given up.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting to the intproxy may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The lowest fd the layer's socket is moved to, away from the small numbers programs pick for `dup2`.
const HIGH_FD_FLOOR: RawFd = 500;

/// Set once the agent is gone; inherited by forked children (the agent is shared by the whole session).
static AGENT_LOST: AtomicBool = AtomicBool::new(false);
/// This process's connection slot (a forked child replaces its parent's copy).
static SLOT: AtomicPtr<Slot> = AtomicPtr::new(std::ptr::null_mut());

/// The connection of one process.
struct Slot {
    pid: u32,
    /// The socket's fd while open, -1 otherwise; readable without the lock (by a forked child).
    fd: AtomicI32,
    state: Mutex<State>,
}

enum State {
    NotConnected,
    Open {
        stream: TcpStream,
        next_id: u64,
        /// Where answers are read, kept from one answer to the next (see [`read_frame_with`]).
        buffer: Vec<u8>,
    },
    Broken,
}

/// Where the intproxy listens and what to show it; set once by [`crate::setup`].
#[derive(Debug)]
pub(crate) struct Endpoint {
    /// The intproxy's layer listener.
    pub(crate) address: SocketAddr,
    /// The session's token.
    pub(crate) token: SessionToken,
}

/// Sends `request` and waits for its answer.
pub(crate) fn request(request: LayerRequest) -> Result<LayerResponse, RemoteError> {
    if AGENT_LOST.load(Ordering::Acquire) {
        return Err(agent_lost("the agent connection was lost earlier"));
    }
    let Some(endpoint) = crate::setup::endpoint() else {
        return Err(agent_lost("the layer is not configured"));
    };
    let slot = slot();
    let mut state = lock(&slot.state);
    if matches!(*state, State::NotConnected) {
        *state = match connect(endpoint) {
            Ok(stream) => {
                slot.fd.store(stream.as_raw_fd(), Ordering::Release);
                State::Open {
                    stream,
                    next_id: 1,
                    buffer: Vec::new(),
                }
            }
            Err(error) => {
                tracing::error!(%error, intproxy = %endpoint.address, "cannot connect to the intproxy");
                State::Broken
            }
        };
    }
    let State::Open {
        stream,
        next_id,
        buffer,
    } = &mut *state
    else {
        return Err(agent_lost("the intproxy connection is broken"));
    };
    let id = RequestId(*next_id);
    *next_id += 1;
    tracing::debug!(?request, "request");
    match exchange(stream, buffer, id, request) {
        Ok(result) => {
            if let Err(error) = &result
                && error.code == ErrorCode::AgentLost
            {
                AGENT_LOST.store(true, Ordering::Release);
            }
            result
        }
        Err(error) => {
            tracing::error!(%error, "the intproxy connection failed; remote calls fail from now on");
            // The socket stays open (and registered) so that its fd number is not reused under the layer.
            *state = State::Broken;
            Err(agent_lost(error.to_string()))
        }
    }
}

/// Records that the agent is gone (seen on another channel to it): every later remote call fails at once.
pub(crate) fn mark_agent_lost() {
    AGENT_LOST.store(true, Ordering::Release);
}

/// Whether the agent is known to be gone.
pub(crate) fn agent_is_lost() -> bool {
    AGENT_LOST.load(Ordering::Acquire)
}

/// Sends a file request and checks the answer's shape.
pub(crate) fn file_request(request: FileRequest) -> Result<FileResponse, RemoteError> {
    match self::request(LayerRequest::File(request))? {
        LayerResponse::File(response) => Ok(response),
        other => Err(unexpected(&other)),
    }
}

/// The error for an answer of the wrong shape.
pub(crate) fn unexpected(response: &LayerResponse) -> RemoteError {
    RemoteError::new(
        ErrorCode::Protocol,
        format!("unexpected answer from the intproxy: {response:?}"),
    )
}

/// The error every remote call gets once the connection or the agent is gone.
fn agent_lost(message: impl Into<String>) -> RemoteError {
    RemoteError::agent_lost(message)
}

/// This process's slot; a new one in a process that forked from the one that made the current slot.
fn slot() -> &'static Slot {
    let pid = process::pid();
    let current = SLOT.load(Ordering::Acquire);
    // SAFETY: slots are leaked `Box`es, never freed, so a non-null pointer stays valid.
    if let Some(slot) = unsafe { current.as_ref() }
        && slot.pid == pid
    {
        return slot;
    }
    let fresh = Box::into_raw(Box::new(Slot {
        pid,
        fd: AtomicI32::new(-1),
        state: Mutex::new(State::NotConnected),
    }));
    match SLOT.compare_exchange(current, fresh, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            // SAFETY: as above.
            if let Some(inherited) = unsafe { current.as_ref() } {
                close_inherited(inherited);
            }
            // SAFETY: `fresh` was just leaked and is never freed.
            unsafe { &*fresh }
        }
        Err(winner) => {
            // Another thread of this process installed its slot first; ours was never shared.
            // SAFETY: `fresh` came from `Box::into_raw` above and nobody else saw it.
            drop(unsafe { Box::from_raw(fresh) });
            // SAFETY: `winner` is a leaked slot, never freed.
            unsafe { &*winner }
        }
    }
}

/// Closes a forked child's copy of its parent's socket, without touching the parent's lock: its fd is
/// read from the atomic, and closed only if the fd table still says it is the layer's.
fn close_inherited(parent: &Slot) {
    let fd = parent.fd.load(Ordering::Acquire);
    if fd >= 0 && FDS.replace_if(fd, FdEntry::LayerConnection, None) {
        // SAFETY: `fd` is this process's copy of the parent's intproxy socket (the table says so), which
        // nothing else in this process uses.
        unsafe { libc::close(fd) };
    }
}

/// Moves the layer's socket away from `fd` when the user program is about to close or replace that fd.
/// Returns whether `fd` was the layer's socket (then the caller's operation proceeds on a free fd).
pub(crate) fn evacuate(fd: RawFd) -> bool {
    let Some(slot) = slot_of_this_process() else {
        // An inherited copy from the parent: the child may close it.
        FDS.replace_if(fd, FdEntry::LayerConnection, None);
        return false;
    };
    let mut state = lock(&slot.state);
    let State::Open { stream, .. } = &mut *state else {
        FDS.replace_if(fd, FdEntry::LayerConnection, None);
        return false;
    };
    if stream.as_raw_fd() != fd {
        FDS.replace_if(fd, FdEntry::LayerConnection, None);
        return false;
    }
    match move_to_high_fd(fd) {
        Ok(new_fd) => {
            // SAFETY: `new_fd` is a fresh duplicate of the socket, owned by nobody else.
            let moved = unsafe { TcpStream::from_raw_fd(new_fd) };
            let old = std::mem::replace(stream, moved);
            // The caller's close or dup2 closes the old number; the stream must not close it again.
            let _ = old.into_raw_fd();
            let _ = FDS.set(new_fd, FdEntry::LayerConnection);
            FDS.replace_if(fd, FdEntry::LayerConnection, None);
            slot.fd.store(new_fd, Ordering::Release);
            true
        }
        Err(error) => {
            tracing::error!(%error, "cannot move the intproxy socket out of the user's way");
            if let State::Open { stream, .. } = std::mem::replace(&mut *state, State::Broken) {
                // The caller's close or dup2 closes this number.
                let _ = stream.into_raw_fd();
            }
            FDS.replace_if(fd, FdEntry::LayerConnection, None);
            true
        }
    }
}

/// The slot if it belongs to this process (without creating one).
fn slot_of_this_process() -> Option<&'static Slot> {
    // SAFETY: slots are leaked `Box`es, never freed.
    let slot = unsafe { SLOT.load(Ordering::Acquire).as_ref() }?;
    (slot.pid == process::pid()).then_some(slot)
}

/// Opens a connection and says hello.
fn connect(endpoint: &Endpoint) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&endpoint.address, CONNECT_TIMEOUT)?;
    let fd = stream.as_raw_fd();
    let stream = match move_to_high_fd(fd) {
        Ok(high) => {
            drop(stream);
            // SAFETY: `high` is a fresh duplicate of the socket, owned by nobody else.
            unsafe { TcpStream::from_raw_fd(high) }
        }
        Err(_) => stream,
    };
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let _ = FDS.set(stream.as_raw_fd(), FdEntry::LayerConnection);
    let mut stream = stream;
    let hello = Hello::new(
        endpoint.token.clone(),
        ClientKind::Layer {
            pid: process::pid(),
            parent_pid: process::parent_pid(),
        },
    );
    write_frame(&mut stream, &hello).map_err(io::Error::other)?;
    let reply: HelloReply = read_frame(&mut stream).map_err(io::Error::other)?;
    let version = reply
        .check(ProtocolVersion::CURRENT)
        .map_err(io::Error::other)?;
    tracing::info!(%version, intproxy = %endpoint.address, "connected to the intproxy");
    Ok(stream)
}

/// A close-on-exec duplicate of `fd` at [`HIGH_FD_FLOOR`] or above.
fn move_to_high_fd(fd: RawFd) -> io::Result<RawFd> {
    // SAFETY: F_DUPFD_CLOEXEC takes an int argument and only creates a new fd.
    let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, HIGH_FD_FLOOR) };
    if high < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(high)
    }
}

/// One request and its answer. An `Err` means the connection is unusable.
fn exchange(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    id: RequestId,
    request: LayerRequest,
) -> io::Result<Result<LayerResponse, RemoteError>> {
    write_frame(stream, &LayerToProxy::Request { id, request }).map_err(io::Error::other)?;
    loop {
        match read_frame_with::<ProxyToLayer, _>(stream, buffer).map_err(io::Error::other)? {
            ProxyToLayer::Response {
                id: answered,
                result,
            } if answered == id => return Ok(result),
            ProxyToLayer::Response { id: answered, .. } => {
                tracing::warn!(%answered, expected = %id, "ignoring an answer to another request");
            }
            ProxyToLayer::Pong { .. } => {}
            ProxyToLayer::AgentLost { message } => {
                tracing::error!(%message, "the intproxy lost the agent; remote calls fail from now on");
                AGENT_LOST.store(true, Ordering::Release);
                return Ok(Err(agent_lost(message)));
            }
        }
    }
}
