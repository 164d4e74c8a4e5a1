//! The supervisor's two ways to the target, both blocking: the intproxy's layer channel (one
//! connection per worker thread, so no answer can reach the wrong call) and, for targets on this
//! machine, the agent's descriptor socket (one connection per `open`, as the layer does). Before
//! either waits, the worker passes its turn at the listener to another (`turn.rs`).

use std::{
    io::{self, Read},
    net::{SocketAddr, TcpStream},
    os::{
        fd::OwnedFd,
        linux::net::SocketAddrExt,
        unix::net::{SocketAddr as UnixAddr, UnixStream},
    },
    time::Duration,
};

use mirrord_protocol::{
    ClientKind, ErrorCode, Hello, HelloReply, LayerRequest, LayerResponse, LayerToProxy,
    ProtocolVersion, ProxyToLayer, RemoteError, RemoteResult, RequestId, SessionToken,
    fd_channel::{FdReply, FdRequest},
    files::{FileRequest, FileResponse, OpenFlags, TargetPath},
    read_frame, read_frame_with, write_frame,
};

use crate::{sys, turn::TurnHolder};

/// How long one exchange may take before the target counts as lost.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the session's intproxy and agent are, and the token they want.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// The intproxy's layer listener.
    pub intproxy: SocketAddr,
    /// The session's token.
    pub token: SessionToken,
    /// The agent's abstract descriptor socket (targets on this machine, `fs.native_fds` on).
    pub agent_fds: Option<String>,
}

/// One worker's connections.
#[derive(Debug)]
pub(crate) struct Remote {
    endpoints: Endpoints,
    intproxy: Option<IntproxyConnection>,
    lost: bool,
    /// This worker's turn at the listener.
    pub(crate) turn: TurnHolder,
}

#[derive(Debug)]
struct IntproxyConnection {
    stream: TcpStream,
    next_id: u64,
    buffer: Vec<u8>,
}

impl Remote {
    pub(crate) fn new(endpoints: Endpoints, turn: TurnHolder) -> Self {
        Self {
            endpoints,
            intproxy: None,
            lost: false,
            turn,
        }
    }

    /// Whether remote files come as the target's own descriptors.
    pub(crate) fn has_native_fds(&self) -> bool {
        self.endpoints.agent_fds.is_some()
    }

    /// Sends `request` to the intproxy and waits for its answer.
    pub(crate) fn request(&mut self, request: LayerRequest) -> Result<LayerResponse, RemoteError> {
        self.turn.pass();
        if self.lost {
            return Err(RemoteError::agent_lost(
                "the intproxy connection was lost earlier",
            ));
        }
        if self.intproxy.is_none() {
            let stream = connect_intproxy(&self.endpoints).map_err(|error| {
                self.lost = true;
                RemoteError::agent_lost(format!(
                    "cannot reach the intproxy at {}: {error}",
                    self.endpoints.intproxy
                ))
            })?;
            self.intproxy = Some(IntproxyConnection {
                stream,
                next_id: 1,
                buffer: Vec::new(),
            });
        }
        let connection = self.intproxy.as_mut().expect("connected above");
        let id = RequestId(connection.next_id);
        connection.next_id += 1;
        match exchange(connection, id, request) {
            Ok(result) => result,
            Err(error) => {
                self.lost = true;
                self.intproxy = None;
                Err(RemoteError::agent_lost(format!(
                    "the intproxy connection failed: {error}"
                )))
            }
        }
    }

    /// A file request through the intproxy.
    pub(crate) fn file(&mut self, request: FileRequest) -> Result<FileResponse, RemoteError> {
        match self.request(LayerRequest::File(request))? {
            LayerResponse::File(response) => Ok(response),
            other => Err(unexpected(&other)),
        }
    }

    /// Asks the agent for the target's own descriptor of `path`; `Ok(None)` for a directory.
    pub(crate) fn open_native(
        &mut self,
        path: &TargetPath,
        flags: OpenFlags,
        mode: u32,
    ) -> Result<Option<OwnedFd>, RemoteError> {
        let request = FdRequest::Open {
            path: path.clone(),
            flags,
            mode,
        };
        match self.descriptor(&request)? {
            (FdReply::Passed, Some(fd)) => Ok(Some(fd)),
            (FdReply::Directory, None) => Ok(None),
            (reply, _) => Err(mismatch(reply)),
        }
    }

    /// Takes the socket of the stolen connection from `remote_peer` to `destination` that the
    /// agent keeps for a handover (`NotFound` when it keeps none: it is relayed instead).
    pub(crate) fn take_incoming(
        &mut self,
        remote_peer: SocketAddr,
        destination: SocketAddr,
    ) -> Result<OwnedFd, RemoteError> {
        let request = FdRequest::TakeIncoming {
            remote_peer,
            destination,
        };
        match self.descriptor(&request)? {
            (FdReply::Connected, Some(fd)) => Ok(fd),
            (reply, _) => Err(mismatch(reply)),
        }
    }

    /// One request on a new connection to the agent's descriptor socket: its answer and the
    /// descriptor that came with it.
    fn descriptor(
        &mut self,
        request: &FdRequest,
    ) -> Result<(FdReply, Option<OwnedFd>), RemoteError> {
        self.turn.pass();
        let Some(socket) = self.endpoints.agent_fds.clone() else {
            return Err(RemoteError::new(
                ErrorCode::Protocol,
                "no descriptor socket in this session",
            ));
        };
        let failure = |error: io::Error, what: &str| {
            if matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                RemoteError::from(&error)
            } else {
                RemoteError::agent_lost(format!("{what} @{socket}: {error}"))
            }
        };
        let mut stream = connect_agent(&socket, &self.endpoints.token)
            .map_err(|error| failure(error, "cannot reach the agent's descriptor socket"))?;
        let mut exchange = || -> io::Result<(RemoteResult<FdReply>, Option<OwnedFd>)> {
            write_frame(&mut stream, request).map_err(io::Error::other)?;
            let mut first = [0u8; 512];
            let (count, fd) = sys::receive_with_fd(&stream, &mut first)?;
            let mut reader = (&first[..count]).chain(&mut stream);
            let reply =
                read_frame::<RemoteResult<FdReply>, _>(&mut reader).map_err(io::Error::other)?;
            Ok((reply, fd))
        };
        let (reply, fd) =
            exchange().map_err(|error| failure(error, "the agent's descriptor socket failed"))?;
        Ok((reply?, fd))
    }
}

/// The error for a descriptor-socket answer whose descriptor count does not match its kind.
fn mismatch(reply: FdReply) -> RemoteError {
    RemoteError::new(
        ErrorCode::Protocol,
        format!("the agent answered {reply:?} with a descriptor count that does not match"),
    )
}

fn exchange(
    connection: &mut IntproxyConnection,
    id: RequestId,
    request: LayerRequest,
) -> io::Result<Result<LayerResponse, RemoteError>> {
    write_frame(
        &mut connection.stream,
        &LayerToProxy::Request { id, request },
    )
    .map_err(io::Error::other)?;
    loop {
        match read_frame_with::<ProxyToLayer, _>(&mut connection.stream, &mut connection.buffer)
            .map_err(io::Error::other)?
        {
            ProxyToLayer::Response {
                id: answered,
                result,
            } if answered == id => return Ok(result),
            ProxyToLayer::Response { id: answered, .. } => {
                tracing::warn!(%answered, expected = %id, "ignoring an answer to another request");
            }
            ProxyToLayer::Pong { .. } => {}
            ProxyToLayer::AgentLost { message } => {
                return Ok(Err(RemoteError::agent_lost(message)));
            }
        }
    }
}

fn connect_intproxy(endpoints: &Endpoints) -> io::Result<TcpStream> {
    let mut stream = TcpStream::connect_timeout(&endpoints.intproxy, IO_TIMEOUT)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let hello = Hello::new(
        endpoints.token.clone(),
        ClientKind::Layer {
            pid: std::process::id(),
            parent_pid: None,
        },
    );
    write_frame(&mut stream, &hello).map_err(io::Error::other)?;
    let reply: HelloReply = read_frame(&mut stream).map_err(io::Error::other)?;
    reply
        .check(ProtocolVersion::CURRENT)
        .map_err(io::Error::other)?;
    Ok(stream)
}

fn connect_agent(socket: &str, token: &SessionToken) -> io::Result<UnixStream> {
    let address = UnixAddr::from_abstract_name(socket.as_bytes())?;
    let mut stream = UnixStream::connect_addr(&address)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let hello = Hello::new(
        token.clone(),
        ClientKind::FdClient {
            pid: std::process::id(),
        },
    );
    write_frame(&mut stream, &hello).map_err(io::Error::other)?;
    let reply: HelloReply = read_frame(&mut stream).map_err(io::Error::other)?;
    reply
        .check(ProtocolVersion::CURRENT)
        .map_err(io::Error::other)?;
    Ok(stream)
}

/// The error for an answer of the wrong shape.
pub(crate) fn unexpected(response: &LayerResponse) -> RemoteError {
    RemoteError::new(
        ErrorCode::Protocol,
        format!("unexpected answer from the intproxy: {response:?}"),
    )
}
