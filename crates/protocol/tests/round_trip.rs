//! Every message variant survives encode → decode, through each way of decoding: a whole frame, a frame fed
//! one byte at a time, `read_frame`, and several frames in one buffer.

mod samples;

use std::{fmt::Debug, io::Cursor};

use mirrord_protocol::{
    AgentRequest, AgentResponse, AgentToClient, ClientToAgent, ErrorCode, FrameDecoder, HelloReply,
    LayerRequest, LayerResponse, LayerToProxy, ProxyToLayer, ReadFrameError, encode, encode_into,
    fd_channel::{FdReply, FdRequest},
    files::{FileRequest, FileResponse},
    handshake::ClientKind,
    incoming::SubscriptionMode,
    read_frame, write_frame,
};
use serde::{Serialize, de::DeserializeOwned};

/// Encodes `message` and checks that every decoding path gives it back unchanged.
fn check<T: Serialize + DeserializeOwned + PartialEq + Debug>(message: &T) {
    let frame = encode(message).unwrap();

    let mut decoder = FrameDecoder::new();
    decoder.push(&frame);
    assert_eq!(decoder.pop::<T>().unwrap().as_ref(), Some(message));
    assert_eq!(decoder.buffered_len(), 0);

    // Split anywhere: nothing comes out before the last byte.
    let mut decoder = FrameDecoder::new();
    for (index, byte) in frame.iter().enumerate() {
        decoder.push(std::slice::from_ref(byte));
        let popped = decoder.pop::<T>().unwrap();
        if index + 1 < frame.len() {
            assert_eq!(popped, None, "{message:?} decoded early at byte {index}");
        } else {
            assert_eq!(popped.as_ref(), Some(message));
        }
    }

    let mut reader = Cursor::new(&frame);
    assert_eq!(&read_frame::<T, _>(&mut reader).unwrap(), message);
    assert!(matches!(
        read_frame::<T, _>(&mut reader),
        Err(ReadFrameError::Closed)
    ));

    let mut written = Vec::new();
    write_frame(&mut written, message).unwrap();
    assert_eq!(written, frame);
}

/// All samples in one buffer, decoded in one go.
fn check_batch<T: Serialize + DeserializeOwned + PartialEq + Debug>(messages: &[T]) {
    let mut buffer = Vec::new();
    for message in messages {
        encode_into(message, &mut buffer).unwrap();
    }
    let mut decoder = FrameDecoder::new();
    decoder.push(&buffer);
    for message in messages {
        assert_eq!(decoder.pop::<T>().unwrap().as_ref(), Some(message));
    }
    assert_eq!(decoder.pop::<T>().unwrap(), None);
}

fn check_all<T: Serialize + DeserializeOwned + PartialEq + Debug>(messages: &[T]) {
    for message in messages {
        check(message);
    }
    check_batch(messages);
}

#[test]
fn handshake_messages() {
    let hellos = samples::hellos();
    check_all(&hellos);
    let clients: Vec<ClientKind> = hellos.into_iter().map(|hello| hello.client).collect();
    covers_every_variant!(clients, ClientKind: Layer, IntProxy, FdClient);
    let replies = samples::hello_replies();
    check_all(&replies);
    covers_every_variant!(replies, HelloReply: Welcome, Refused);
}

#[test]
fn fd_channel_messages() {
    let requests = samples::fd_requests();
    check_all(&requests);
    covers_every_variant!(
        requests,
        FdRequest: Open,
        Connect,
        UnixConnect,
        TakeIncoming
    );
    let replies = samples::fd_replies();
    check_all(&replies);
    let passed: Vec<FdReply> = replies
        .iter()
        .filter_map(|reply| reply.clone().ok())
        .collect();
    covers_every_variant!(passed, FdReply: Passed, Directory, Connected, Connecting);
}

#[test]
fn layer_to_proxy() {
    let messages = samples::layer_to_proxy();
    check_all(&messages);
    covers_every_variant!(messages, LayerToProxy: Request, Ping);
    let requests = samples::layer_requests();
    covers_every_variant!(
        requests,
        LayerRequest: File,
        GetEnv,
        GetAddrInfo,
        GetHostname,
        OutgoingConnect,
        PortSubscribe,
        PortUnsubscribe,
        IncomingConnectionInfo,
        LocalListener,
        FindLocalListener,
        OutgoingUnixConnect,
    );
}

#[test]
fn proxy_to_layer() {
    let messages = samples::proxy_to_layer();
    check_all(&messages);
    covers_every_variant!(messages, ProxyToLayer: Response, Pong, AgentLost);
    let responses = samples::layer_responses();
    covers_every_variant!(
        responses,
        LayerResponse: File,
        Env,
        AddrInfo,
        Hostname,
        OutgoingConnected,
        PortSubscribed,
        PortUnsubscribed,
        IncomingConnectionInfo,
        PortSubscribedWithWarning,
        Noted,
        LocalListenerFound,
        OutgoingUnixConnected,
    );
}

#[test]
fn client_to_agent() {
    let messages = samples::client_to_agent();
    check_all(&messages);
    covers_every_variant!(
        messages,
        ClientToAgent: Request,
        Ping,
        OutgoingData,
        OutgoingShutdown,
        OutgoingClose,
        UdpSend,
        UdpClose,
        IncomingData,
        IncomingShutdown,
        IncomingClose,
    );
    let requests = samples::agent_requests();
    covers_every_variant!(
        requests,
        AgentRequest: File,
        GetEnv,
        GetAddrInfo,
        GetHostname,
        TcpConnect,
        UdpOpen,
        PortSubscribe,
        PortUnsubscribe,
        UnixConnect,
    );
    let modes: Vec<SubscriptionMode> = requests
        .into_iter()
        .filter_map(|request| match request {
            AgentRequest::PortSubscribe(subscription) => Some(subscription.mode),
            _ => None,
        })
        .collect();
    covers_every_variant!(
        modes,
        SubscriptionMode: Mirror,
        Steal,
        StealHttp,
        StealHandover
    );
}

#[test]
fn agent_to_client() {
    let messages = samples::agent_to_client();
    check_all(&messages);
    covers_every_variant!(
        messages,
        AgentToClient: Response,
        Pong,
        OutgoingData,
        OutgoingShutdown,
        OutgoingClosed,
        UdpReceived,
        UdpClosed,
        IncomingConnection,
        IncomingData,
        IncomingShutdown,
        IncomingClosed,
    );
    let responses = samples::agent_responses();
    covers_every_variant!(
        responses,
        AgentResponse: File,
        Env,
        AddrInfo,
        Hostname,
        TcpConnected,
        UdpOpened,
        PortSubscribed,
        PortUnsubscribed,
        PortSubscribedWithWarning,
        UnixConnected,
    );
}

#[test]
fn file_operations() {
    let requests = samples::file_requests();
    check_all(&requests);
    covers_every_variant!(
        requests,
        FileRequest: Open,
        Read,
        Pread,
        Write,
        Pwrite,
        Lseek,
        Close,
        Fstat,
        Stat,
        Access,
        Readlink,
        Opendir,
        Readdir,
        Closedir,
        Mkdir,
        Unlink,
        Rmdir,
        Rename,
        Ftruncate,
        Getxattr,
        Listxattr,
    );
    let responses = samples::file_responses();
    check_all(&responses);
    covers_every_variant!(
        responses,
        FileResponse: Opened,
        Read,
        Written,
        Position,
        Metadata,
        LinkTarget,
        DirOpened,
        DirEntries,
        Done,
        Xattr,
    );
}

#[test]
fn error_codes() {
    let codes = samples::error_codes();
    check_all(&codes);
    covers_every_variant!(
        codes,
        ErrorCode: NotFound,
        PermissionDenied,
        OperationNotPermitted,
        AlreadyExists,
        NotADirectory,
        IsADirectory,
        DirectoryNotEmpty,
        InvalidInput,
        BadHandle,
        TooManyOpenFiles,
        NameTooLong,
        TooManySymlinks,
        ReadOnlyFilesystem,
        NoSpace,
        CrossesDevices,
        Busy,
        FileTooLarge,
        OutOfMemory,
        WouldBlock,
        Interrupted,
        BrokenPipe,
        ConnectionRefused,
        ConnectionReset,
        ConnectionAborted,
        NotConnected,
        HostUnreachable,
        NetworkUnreachable,
        NetworkDown,
        TimedOut,
        AddrInUse,
        AddrNotAvailable,
        AddressFamilyNotSupported,
        SocketTypeNotSupported,
        MessageTooLong,
        NoSuchName,
        TryAgain,
        DnsFailure,
        UnknownService,
        Unsupported,
        OperationNotSupported,
        Io,
        Protocol,
        AgentLost,
        Other,
    );
}

/// The largest data message the protocol promises to carry fits in a frame.
#[test]
fn a_full_io_chunk_fits_in_a_frame() {
    let data = mirrord_protocol::Bytes::from(vec![0x5a; mirrord_protocol::MAX_IO_CHUNK as usize]);
    let message = ProxyToLayer::Response {
        id: mirrord_protocol::RequestId(u64::MAX),
        result: Ok(LayerResponse::File(FileResponse::Read(data))),
    };
    let frame = encode(&message).unwrap();
    let mut decoder = FrameDecoder::new();
    decoder.push(&frame);
    assert_eq!(decoder.pop::<ProxyToLayer>().unwrap(), Some(message));
}
