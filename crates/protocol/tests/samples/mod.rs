//! One or more sample values of every message variant, shared by the round-trip, fixture and robustness
//! tests, and `covers_every_variant!`, which fails to compile when a variant has no name in its list.
//!
//! The fixture test encodes some of these values: changing one of them changes a fixture.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the samples"
)]

use std::net::SocketAddr;

use mirrord_protocol::{
    AgentRequest, AgentResponse, AgentToClient, Bytes, ClientKind, ClientToAgent, ConnectionId,
    DirHandle, ErrorCode, FileHandle, Hello, HelloReply, LayerRequest, LayerResponse, LayerToProxy,
    ProtocolVersion, ProxyToLayer, RemoteError, RemoteResult, RequestId, SessionToken, UdpSocketId,
    dns::{AddrInfo, AddrInfoFlags, AddressFamily, GetAddrInfoRequest, SocketType},
    env::{EnvVar, GetEnvRequest},
    fd_channel::{FdReply, FdRequest},
    files::{
        AccessMode, DirEntry, FileRequest, FileResponse, FileType, Metadata, OpenFlags, TargetPath,
        Timestamp, Whence,
    },
    incoming::{
        HttpFilter, IncomingConnectionInfo, IncomingConnectionInfoRequest, LayerPortSubscription,
        LayerPortUnsubscription, NewIncomingConnection, PortSubscription, SubscriptionMode,
    },
    outgoing::{
        ConnectionClosed, ConnectionData, LocalListener, OutgoingConnectRequest, OutgoingConnected,
        OutgoingUnixConnectRequest, OutgoingUnixConnected, TcpConnectRequest, TcpConnected,
        TransportProtocol, UdpClosed, UdpOpenRequest, UdpOpened, UdpReceived, UdpSend,
        UnixConnectRequest, UnixConnected,
    },
};

/// Asserts that `samples` hold every variant of `$ty`, listed after the colon. Adding a variant to the enum
/// breaks the exhaustive match below until it is listed here (and then this assertion until it has a sample).
#[macro_export]
macro_rules! covers_every_variant {
    ($samples:expr, $ty:ident: $($variant:ident),+ $(,)?) => {{
        fn name(value: &$ty) -> &'static str {
            match value {
                $($ty::$variant { .. } => stringify!($variant),)+
            }
        }
        let seen: std::collections::BTreeSet<&str> = $samples.iter().map(name).collect();
        let missing: Vec<&str> = [$(stringify!($variant)),+].into_iter().filter(|v| !seen.contains(v)).collect();
        assert!(missing.is_empty(), "{} variants without a sample: {missing:?}", stringify!($ty));
    }};
}

pub(crate) fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

pub(crate) fn token() -> SessionToken {
    let mut bytes = [0u8; 32];
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = index as u8;
    }
    SessionToken::from_bytes(bytes)
}

pub(crate) fn hellos() -> Vec<Hello> {
    vec![
        Hello {
            protocol_version: ProtocolVersion::new(1, 0, 0),
            session_token: token(),
            client: ClientKind::Layer {
                pid: 4242,
                parent_pid: Some(1),
            },
        },
        Hello::new(
            token(),
            ClientKind::Layer {
                pid: 1,
                parent_pid: None,
            },
        ),
        Hello::new(token(), ClientKind::IntProxy),
        Hello::new(token(), ClientKind::FdClient { pid: 77 }),
    ]
}

pub(crate) fn fd_requests() -> Vec<FdRequest> {
    vec![
        FdRequest::Open {
            path: TargetPath::from_bytes("/app/config.yaml"),
            flags: OpenFlags::READ_ONLY,
            mode: 0o644,
        },
        FdRequest::Connect {
            remote: addr("127.0.0.1:8080"),
        },
        FdRequest::Connect {
            remote: addr("[::ffff:10.0.0.7]:5432"),
        },
        FdRequest::UnixConnect {
            path: TargetPath::from_bytes("/run/app.sock"),
        },
        FdRequest::TakeIncoming {
            remote_peer: addr("10.0.0.9:33000"),
            destination: addr("10.0.0.5:80"),
        },
    ]
}

pub(crate) fn fd_replies() -> Vec<RemoteResult<FdReply>> {
    vec![
        Ok(FdReply::Passed),
        Ok(FdReply::Directory),
        Ok(FdReply::Connected),
        Ok(FdReply::Connecting),
        Err(RemoteError::new(ErrorCode::NotFound, "no such file")),
    ]
}

pub(crate) fn hello_replies() -> Vec<HelloReply> {
    vec![
        HelloReply::Welcome {
            protocol_version: ProtocolVersion::new(1, 0, 0),
        },
        HelloReply::Refused {
            reason: "wrong session token".into(),
        },
    ]
}

pub(crate) fn metadata() -> Metadata {
    Metadata {
        dev: 0x803,
        ino: 1_234_567,
        mode: 0o100644,
        nlink: 1,
        uid: 1000,
        gid: 1000,
        rdev: 0,
        size: 4096,
        blksize: 4096,
        blocks: 8,
        atime: Timestamp {
            seconds: 1_700_000_000,
            nanoseconds: 123_456_789,
        },
        mtime: Timestamp {
            seconds: 1_600_000_000,
            nanoseconds: 0,
        },
        ctime: Timestamp {
            seconds: -1,
            nanoseconds: 999_999_999,
        },
    }
}

pub(crate) fn file_requests() -> Vec<FileRequest> {
    let path = TargetPath::from("/etc/app/config.yaml");
    vec![
        FileRequest::Open {
            path: path.clone(),
            flags: OpenFlags {
                cloexec: true,
                ..OpenFlags::READ_ONLY
            },
            mode: 0,
        },
        FileRequest::Open {
            path: TargetPath::from_bytes(b"/tmp/\xff-not-utf8".to_vec()),
            flags: OpenFlags {
                read: false,
                write: true,
                append: true,
                create: true,
                truncate: true,
                exclusive: true,
                directory: false,
                nofollow: true,
                cloexec: false,
            },
            mode: 0o644,
        },
        FileRequest::Read {
            handle: FileHandle(3),
            len: 1 << 20,
        },
        FileRequest::Pread {
            handle: FileHandle(3),
            offset: u64::MAX,
            len: 0,
        },
        FileRequest::Write {
            handle: FileHandle(4),
            data: Bytes::from(b"hello\n"),
        },
        FileRequest::Pwrite {
            handle: FileHandle(4),
            offset: 10,
            data: Bytes::default(),
        },
        FileRequest::Lseek {
            handle: FileHandle(3),
            offset: -20,
            whence: Whence::End,
        },
        FileRequest::Lseek {
            handle: FileHandle(3),
            offset: 0,
            whence: Whence::Hole,
        },
        FileRequest::Close {
            handle: FileHandle(u64::MAX),
        },
        FileRequest::Fstat {
            handle: FileHandle(3),
        },
        FileRequest::Stat {
            path: path.clone(),
            follow_symlinks: true,
        },
        FileRequest::Stat {
            path: path.clone(),
            follow_symlinks: false,
        },
        FileRequest::Access {
            path: path.clone(),
            mode: AccessMode {
                read: true,
                write: false,
                execute: true,
            },
        },
        FileRequest::Readlink {
            path: "/proc/self/exe".into(),
        },
        FileRequest::Opendir {
            path: "/etc".into(),
        },
        FileRequest::Readdir {
            handle: DirHandle(7),
            max_entries: 128,
        },
        FileRequest::Closedir {
            handle: DirHandle(7),
        },
        FileRequest::Mkdir {
            path: "/tmp/new".into(),
            mode: 0o755,
        },
        FileRequest::Unlink {
            path: "/tmp/new/file".into(),
        },
        FileRequest::Rmdir {
            path: "/tmp/new".into(),
        },
        FileRequest::Rename {
            from: "/tmp/a".into(),
            to: "/tmp/b".into(),
        },
        FileRequest::Ftruncate {
            handle: FileHandle(4),
            len: 0,
        },
        FileRequest::Getxattr {
            path: path.clone(),
            name: b"user.comment".to_vec(),
            follow_symlinks: false,
        },
        FileRequest::Listxattr {
            path: path.clone(),
            follow_symlinks: true,
        },
    ]
}

pub(crate) fn file_responses() -> Vec<FileResponse> {
    vec![
        FileResponse::Opened(FileHandle(3)),
        FileResponse::Read(Bytes::from(b"key: value\n")),
        FileResponse::Read(Bytes::default()),
        FileResponse::Written(6),
        FileResponse::Position(1 << 40),
        FileResponse::Metadata(metadata()),
        FileResponse::LinkTarget("/usr/bin/python3.12".into()),
        FileResponse::DirOpened(DirHandle(7)),
        FileResponse::DirEntries(vec![
            DirEntry {
                name: b".".to_vec(),
                inode: 2,
                file_type: FileType::Directory,
            },
            DirEntry {
                name: b"passwd".to_vec(),
                inode: 99,
                file_type: FileType::Regular,
            },
            DirEntry {
                name: b"\xfe".to_vec(),
                inode: 100,
                file_type: FileType::Unknown,
            },
            DirEntry {
                name: b"link".to_vec(),
                inode: 101,
                file_type: FileType::Symlink,
            },
            DirEntry {
                name: b"fifo".to_vec(),
                inode: 102,
                file_type: FileType::Fifo,
            },
            DirEntry {
                name: b"tty".to_vec(),
                inode: 103,
                file_type: FileType::CharDevice,
            },
            DirEntry {
                name: b"sda".to_vec(),
                inode: 104,
                file_type: FileType::BlockDevice,
            },
            DirEntry {
                name: b"sock".to_vec(),
                inode: 105,
                file_type: FileType::Socket,
            },
        ]),
        FileResponse::DirEntries(vec![]),
        FileResponse::Done,
        FileResponse::Xattr(Bytes::from(b"user.comment\0security.selinux\0")),
    ]
}

pub(crate) fn env_request() -> GetEnvRequest {
    GetEnvRequest {
        include: vec!["DB_*".into(), "HOME".into()],
        exclude: vec!["DB_PASSWORD".into()],
    }
}

pub(crate) fn env_vars() -> Vec<EnvVar> {
    vec![
        EnvVar {
            name: "DB_HOST".into(),
            value: "postgres.default.svc".into(),
        },
        EnvVar {
            name: "EMPTY".into(),
            value: String::new(),
        },
    ]
}

pub(crate) fn getaddrinfo_request() -> GetAddrInfoRequest {
    GetAddrInfoRequest {
        node: Some("postgres.default.svc".into()),
        service: Some("5432".into()),
        family: AddressFamily::Unspecified,
        socket_type: SocketType::Stream,
        protocol: 6,
        flags: AddrInfoFlags {
            canonical_name: true,
            addr_config: true,
            ..AddrInfoFlags::default()
        },
    }
}

pub(crate) fn addr_infos() -> Vec<AddrInfo> {
    vec![
        AddrInfo {
            socket_type: SocketType::Stream,
            protocol: 6,
            address: addr("10.0.0.7:5432"),
            canonical_name: Some("postgres.default.svc.cluster.local".into()),
        },
        AddrInfo {
            socket_type: SocketType::Datagram,
            protocol: 17,
            address: addr("[fd00::7]:5432"),
            canonical_name: None,
        },
    ]
}

pub(crate) fn http_filter() -> HttpFilter {
    HttpFilter::AnyOf(vec![
        HttpFilter::AllOf(vec![
            HttpFilter::Method("^(GET|HEAD)$".into()),
            HttpFilter::Path("^/api/v1/".into()),
        ]),
        HttpFilter::Header("^x-mirrord-user: alice$".into()),
    ])
}

pub(crate) fn error(code: ErrorCode) -> RemoteError {
    RemoteError::new(code, format!("{code} while testing"))
}

pub(crate) fn layer_requests() -> Vec<LayerRequest> {
    let mut requests: Vec<LayerRequest> = file_requests()
        .into_iter()
        .map(LayerRequest::File)
        .collect();
    requests.extend([
        LayerRequest::GetEnv(env_request()),
        LayerRequest::GetEnv(GetEnvRequest::default()),
        LayerRequest::GetAddrInfo(getaddrinfo_request()),
        LayerRequest::GetAddrInfo(GetAddrInfoRequest::default()),
        LayerRequest::GetHostname,
        LayerRequest::OutgoingConnect(OutgoingConnectRequest {
            remote: addr("10.0.0.7:5432"),
            protocol: TransportProtocol::Tcp,
        }),
        LayerRequest::OutgoingConnect(OutgoingConnectRequest {
            remote: addr("[::1]:53"),
            protocol: TransportProtocol::Udp,
        }),
        LayerRequest::PortSubscribe(LayerPortSubscription {
            subscription: PortSubscription {
                port: 80,
                mode: SubscriptionMode::StealHttp(http_filter()),
            },
            listening_on: addr("127.0.0.1:8080"),
        }),
        LayerRequest::PortUnsubscribe(LayerPortUnsubscription {
            port: 80,
            listening_on: addr("127.0.0.1:8080"),
        }),
        LayerRequest::IncomingConnectionInfo(IncomingConnectionInfoRequest {
            intproxy_addr: addr("127.0.0.1:40000"),
        }),
        LayerRequest::LocalListener(LocalListener {
            port: 9229,
            listening_on: addr("127.0.0.1:9229"),
            open: true,
        }),
        LayerRequest::FindLocalListener { port: 9229 },
        LayerRequest::OutgoingUnixConnect(OutgoingUnixConnectRequest {
            path: TargetPath::from_bytes("/run/app.sock"),
        }),
    ]);
    requests
}

pub(crate) fn layer_responses() -> Vec<LayerResponse> {
    let mut responses: Vec<LayerResponse> = file_responses()
        .into_iter()
        .map(LayerResponse::File)
        .collect();
    responses.extend([
        LayerResponse::Env(env_vars()),
        LayerResponse::AddrInfo(addr_infos()),
        LayerResponse::Hostname("api-7f9c".into()),
        LayerResponse::OutgoingConnected(OutgoingConnected {
            intproxy_addr: addr("127.0.0.1:41000"),
            agent_local_addr: addr("10.0.0.5:51234"),
        }),
        LayerResponse::PortSubscribed,
        LayerResponse::PortSubscribedWithWarning("nothing listens on port 8081".to_owned()),
        LayerResponse::PortUnsubscribed,
        LayerResponse::IncomingConnectionInfo(IncomingConnectionInfo {
            remote_peer: addr("10.0.0.9:33000"),
            destination: addr("10.0.0.5:80"),
        }),
        LayerResponse::Noted,
        LayerResponse::LocalListenerFound(Some(addr("127.0.0.1:39000"))),
        LayerResponse::LocalListenerFound(None),
        LayerResponse::OutgoingUnixConnected(OutgoingUnixConnected {
            intproxy_path: TargetPath::from_bytes("/run/user/1000/mirrord-intproxy-4242/1.sock"),
        }),
    ]);
    responses
}

pub(crate) fn layer_to_proxy() -> Vec<LayerToProxy> {
    let mut messages: Vec<LayerToProxy> = layer_requests()
        .into_iter()
        .enumerate()
        .map(|(index, request)| LayerToProxy::Request {
            id: RequestId(index as u64 * 1000),
            request,
        })
        .collect();
    messages.push(LayerToProxy::Ping { nonce: u64::MAX });
    messages
}

pub(crate) fn proxy_to_layer() -> Vec<ProxyToLayer> {
    let mut messages: Vec<ProxyToLayer> = layer_responses()
        .into_iter()
        .enumerate()
        .map(|(index, response)| ProxyToLayer::Response {
            id: RequestId(index as u64),
            result: Ok(response),
        })
        .collect();
    messages.extend(
        error_codes()
            .into_iter()
            .map(|code| ProxyToLayer::Response {
                id: RequestId(u64::MAX),
                result: Err(error(code)),
            }),
    );
    messages.push(ProxyToLayer::Pong { nonce: 0 });
    messages.push(ProxyToLayer::AgentLost {
        message: "agent connection closed".into(),
    });
    messages
}

pub(crate) fn agent_requests() -> Vec<AgentRequest> {
    let mut requests: Vec<AgentRequest> = file_requests()
        .into_iter()
        .map(AgentRequest::File)
        .collect();
    requests.extend([
        AgentRequest::GetEnv(env_request()),
        AgentRequest::GetAddrInfo(getaddrinfo_request()),
        AgentRequest::GetHostname,
        AgentRequest::TcpConnect(TcpConnectRequest {
            remote: addr("10.0.0.7:5432"),
        }),
        AgentRequest::UdpOpen(UdpOpenRequest {
            family: AddressFamily::Inet6,
            bind: None,
            connect: None,
        }),
        AgentRequest::UdpOpen(UdpOpenRequest {
            family: AddressFamily::Unspecified,
            bind: Some(addr("0.0.0.0:0")),
            connect: Some(addr("10.0.0.10:53")),
        }),
        AgentRequest::PortSubscribe(PortSubscription {
            port: 80,
            mode: SubscriptionMode::Mirror,
        }),
        AgentRequest::PortSubscribe(PortSubscription {
            port: 443,
            mode: SubscriptionMode::Steal,
        }),
        AgentRequest::PortSubscribe(PortSubscription {
            port: 8080,
            mode: SubscriptionMode::StealHttp(http_filter()),
        }),
        AgentRequest::PortSubscribe(PortSubscription {
            port: 8081,
            mode: SubscriptionMode::StealHandover,
        }),
        AgentRequest::PortUnsubscribe { port: 80 },
        AgentRequest::UnixConnect(UnixConnectRequest {
            path: TargetPath::from_bytes("/run/app.sock"),
        }),
    ]);
    requests
}

pub(crate) fn agent_responses() -> Vec<AgentResponse> {
    let mut responses: Vec<AgentResponse> = file_responses()
        .into_iter()
        .map(AgentResponse::File)
        .collect();
    responses.extend([
        AgentResponse::Env(env_vars()),
        AgentResponse::AddrInfo(addr_infos()),
        AgentResponse::Hostname("api-7f9c".into()),
        AgentResponse::TcpConnected(TcpConnected {
            connection_id: ConnectionId(1),
            agent_local_addr: addr("10.0.0.5:51234"),
        }),
        AgentResponse::UdpOpened(UdpOpened {
            socket_id: UdpSocketId(2),
            agent_local_addr: addr("[fd00::5]:40001"),
        }),
        AgentResponse::PortSubscribed,
        AgentResponse::PortSubscribedWithWarning("nothing listens on port 8081".to_owned()),
        AgentResponse::PortUnsubscribed,
        AgentResponse::UnixConnected(UnixConnected {
            connection_id: ConnectionId(3),
        }),
    ]);
    responses
}

pub(crate) fn client_to_agent() -> Vec<ClientToAgent> {
    let mut messages: Vec<ClientToAgent> = agent_requests()
        .into_iter()
        .enumerate()
        .map(|(index, request)| ClientToAgent::Request {
            id: RequestId(index as u64 + 1),
            request,
        })
        .collect();
    messages.extend([
        ClientToAgent::Ping { nonce: 17 },
        ClientToAgent::OutgoingData(ConnectionData {
            connection_id: ConnectionId(1),
            data: Bytes::from(b"PING\r\n"),
        }),
        ClientToAgent::OutgoingShutdown {
            connection_id: ConnectionId(1),
        },
        ClientToAgent::OutgoingClose {
            connection_id: ConnectionId(1),
        },
        ClientToAgent::UdpSend(UdpSend {
            socket_id: UdpSocketId(2),
            to: Some(addr("10.0.0.10:53")),
            data: Bytes::from(b"\x12\x34"),
        }),
        ClientToAgent::UdpSend(UdpSend {
            socket_id: UdpSocketId(2),
            to: None,
            data: Bytes::default(),
        }),
        ClientToAgent::UdpClose {
            socket_id: UdpSocketId(2),
        },
        ClientToAgent::IncomingData(ConnectionData {
            connection_id: ConnectionId(5),
            data: Bytes::from(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"),
        }),
        ClientToAgent::IncomingShutdown {
            connection_id: ConnectionId(5),
        },
        ClientToAgent::IncomingClose {
            connection_id: ConnectionId(5),
        },
    ]);
    messages
}

pub(crate) fn agent_to_client() -> Vec<AgentToClient> {
    let mut messages: Vec<AgentToClient> = agent_responses()
        .into_iter()
        .enumerate()
        .map(|(index, response)| AgentToClient::Response {
            id: RequestId(index as u64 + 1),
            result: Ok(response),
        })
        .collect();
    messages.extend([
        AgentToClient::Response {
            id: RequestId(0),
            result: Err(error(ErrorCode::ConnectionRefused)),
        },
        AgentToClient::Pong { nonce: 17 },
        AgentToClient::OutgoingData(ConnectionData {
            connection_id: ConnectionId(1),
            data: Bytes::from(b"+PONG\r\n"),
        }),
        AgentToClient::OutgoingShutdown {
            connection_id: ConnectionId(1),
        },
        AgentToClient::OutgoingClosed(ConnectionClosed {
            connection_id: ConnectionId(1),
            error: None,
        }),
        AgentToClient::OutgoingClosed(ConnectionClosed {
            connection_id: ConnectionId(1),
            error: Some(error(ErrorCode::ConnectionReset)),
        }),
        AgentToClient::UdpReceived(UdpReceived {
            socket_id: UdpSocketId(2),
            from: addr("10.0.0.10:53"),
            data: Bytes::from(vec![0xab; 512]),
        }),
        AgentToClient::UdpClosed(UdpClosed {
            socket_id: UdpSocketId(2),
            error: None,
        }),
        AgentToClient::IncomingConnection(NewIncomingConnection {
            connection_id: ConnectionId(5),
            remote_peer: addr("10.0.0.9:33000"),
            destination: addr("10.0.0.5:80"),
            port: 80,
        }),
        AgentToClient::IncomingData(ConnectionData {
            connection_id: ConnectionId(5),
            data: Bytes::from(b"GET / HTTP/1.1\r\nhost: api\r\n\r\n"),
        }),
        AgentToClient::IncomingShutdown {
            connection_id: ConnectionId(5),
        },
        AgentToClient::IncomingClosed(ConnectionClosed {
            connection_id: ConnectionId(5),
            error: None,
        }),
    ]);
    messages
}

/// Every code: the named ones, and `Other` at both ends of its range.
pub(crate) fn error_codes() -> Vec<ErrorCode> {
    ErrorCode::NAMED
        .iter()
        .copied()
        .chain([ErrorCode::Other(-1), ErrorCode::Other(i32::MAX)])
        .collect()
}
