//! The intproxy against the real agent (targetless, on this machine): requests from several
//! layer connections are answered by id, outgoing TCP and UDP are relayed through loopback
//! sockets, a wrong token is refused, and losing the agent fails requests at once.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mirrord_intproxy::{Intproxy, IntproxyOptions};
use mirrord_protocol::files::{FileRequest, FileResponse, OpenFlags, Whence};
use mirrord_protocol::frame::{read_frame, write_frame};
use mirrord_protocol::handshake::{ClientKind, Hello, HelloReply};
use mirrord_protocol::ids::{FileHandle, RequestId};
use mirrord_protocol::layer_channel::{LayerRequest, LayerResponse, LayerToProxy, ProxyToLayer};
use mirrord_protocol::outgoing::{OutgoingConnectRequest, TransportProtocol};
use mirrord_protocol::token::SessionToken;
use mirrord_protocol::{ErrorCode, RemoteResult};

fn agent_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let path = target.join("debug/mirrord-agent");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` before the tests",
        path.display()
    );
    path
}

struct Agent {
    child: Child,
    address: SocketAddr,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_agent(token: &SessionToken) -> Agent {
    start_agent_with(token, &["--communication-timeout", "5"])
}

fn start_agent_with(token: &SessionToken, args: &[&str]) -> Agent {
    let mut child = Command::new(agent_binary())
        .args(args)
        .env("MIRRORD_AGENT_TOKEN", token.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the agent");
    let mut stdout = child.stdout.take().unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while stdout.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    let line = String::from_utf8(line).unwrap();
    let address = line
        .strip_prefix("MIRRORD_AGENT_LISTENING=")
        .expect("the agent announces its address")
        .parse()
        .unwrap();
    Agent { child, address }
}

fn token() -> SessionToken {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    SessionToken::from_bytes(bytes)
}

/// A blocking layer-channel client, as the layer is.
struct Layer {
    stream: TcpStream,
    next_id: u64,
}

impl Layer {
    fn connect(address: SocketAddr, token: &SessionToken) -> Result<Layer, String> {
        let mut stream = TcpStream::connect(address).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write_frame(
            &mut stream,
            &Hello::new(
                token.clone(),
                ClientKind::Layer {
                    pid: std::process::id(),
                    parent_pid: None,
                },
            ),
        )
        .unwrap();
        match read_frame::<HelloReply, _>(&mut stream).map_err(|e| e.to_string())? {
            HelloReply::Welcome { .. } => Ok(Layer { stream, next_id: 0 }),
            HelloReply::Refused { reason } => Err(reason),
        }
    }

    fn request(&mut self, request: LayerRequest) -> RemoteResult<LayerResponse> {
        self.next_id += 1;
        let id = RequestId(self.next_id);
        write_frame(&mut self.stream, &LayerToProxy::Request { id, request }).unwrap();
        loop {
            match read_frame::<ProxyToLayer, _>(&mut self.stream).unwrap() {
                ProxyToLayer::Response {
                    id: answered,
                    result,
                } => {
                    assert_eq!(answered, id, "responses come back with their request's id");
                    return result;
                }
                ProxyToLayer::AgentLost { .. } | ProxyToLayer::Pong { .. } => {}
            }
        }
    }
}

fn start_intproxy(agent: &Agent, token: &SessionToken) -> (SocketAddr, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let options = IntproxyOptions {
        agent_addr: agent.address,
        token: token.clone(),
        listen: "127.0.0.1:0".parse().unwrap(),
        start_idle_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
    };
    let intproxy = runtime
        .block_on(Intproxy::start(options))
        .expect("the intproxy connects");
    let address = intproxy.local_addr().unwrap();
    runtime.spawn(intproxy.serve());
    (address, runtime)
}

fn read_file(layer: &mut Layer, path: &str) -> RemoteResult<Vec<u8>> {
    let LayerResponse::File(FileResponse::Opened(handle)) =
        layer.request(LayerRequest::File(FileRequest::Open {
            path: path.into(),
            flags: OpenFlags::READ_ONLY,
            mode: 0,
        }))?
    else {
        panic!("unexpected open response");
    };
    let LayerResponse::File(FileResponse::Read(bytes)) =
        layer.request(LayerRequest::File(FileRequest::Read {
            handle,
            len: 1 << 20,
        }))?
    else {
        panic!("unexpected read response");
    };
    layer.request(LayerRequest::File(FileRequest::Close { handle }))?;
    Ok(bytes.into_vec())
}

#[test]
fn serves_files_and_relays_tcp_and_udp_for_several_layers() {
    let token = token();
    let agent = start_agent(&token);
    let (address, _runtime) = start_intproxy(&agent, &token);

    let file = std::env::temp_dir().join(format!("mirrord-intproxy-test-{}", std::process::id()));
    std::fs::write(&file, "from the agent").unwrap();
    let mut first = Layer::connect(address, &token).unwrap();
    let mut second = Layer::connect(address, &token).unwrap();
    assert_eq!(
        read_file(&mut first, file.to_str().unwrap()).unwrap(),
        b"from the agent"
    );
    assert_eq!(
        read_file(&mut second, file.to_str().unwrap()).unwrap(),
        b"from the agent"
    );
    assert_eq!(
        read_file(&mut first, "/does/not/exist").unwrap_err().code,
        ErrorCode::NotFound
    );
    std::fs::remove_file(&file).unwrap();

    // TCP: an echo server stands for the remote service.
    let echo = TcpListener::bind("127.0.0.1:0").unwrap();
    let echo_addr = echo.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in echo.incoming().take(1) {
            let mut stream = stream.unwrap();
            let mut buffer = [0u8; 1024];
            while let Ok(read) = stream.read(&mut buffer) {
                if read == 0 || stream.write_all(&buffer[..read]).is_err() {
                    break;
                }
            }
        }
    });
    let LayerResponse::OutgoingConnected(connected) = first
        .request(LayerRequest::OutgoingConnect(OutgoingConnectRequest {
            remote: echo_addr,
            protocol: TransportProtocol::Tcp,
        }))
        .unwrap()
    else {
        panic!("unexpected connect response");
    };
    let mut user_socket = TcpStream::connect(connected.intproxy_addr).unwrap();
    user_socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    user_socket.write_all(b"ping over tcp").unwrap();
    let mut reply = [0u8; 13];
    user_socket.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"ping over tcp");

    // UDP.
    let udp_echo = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_addr = udp_echo.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 1024];
        if let Ok((read, from)) = udp_echo.recv_from(&mut buffer) {
            let _ = udp_echo.send_to(&buffer[..read], from);
        }
    });
    let LayerResponse::OutgoingConnected(connected) = second
        .request(LayerRequest::OutgoingConnect(OutgoingConnectRequest {
            remote: udp_addr,
            protocol: TransportProtocol::Udp,
        }))
        .unwrap()
    else {
        panic!("unexpected connect response");
    };
    let user_udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    user_udp
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    user_udp
        .send_to(b"ping over udp", connected.intproxy_addr)
        .unwrap();
    let mut buffer = [0u8; 64];
    let (read, from) = user_udp.recv_from(&mut buffer).unwrap();
    assert_eq!(&buffer[..read], b"ping over udp");
    assert_eq!(from, connected.intproxy_addr);
}

#[test]
fn a_wrong_token_is_refused() {
    let token = token();
    let agent = start_agent(&token);
    let (address, _runtime) = start_intproxy(&agent, &token);
    let reason = Layer::connect(address, &SessionToken::from_bytes([1; 32]))
        .err()
        .expect("refused");
    assert!(reason.contains("token"), "{reason}");
}

#[test]
fn losing_the_agent_fails_requests_fast() {
    let token = token();
    let mut agent = start_agent(&token);
    let (address, _runtime) = start_intproxy(&agent, &token);
    let mut layer = Layer::connect(address, &token).unwrap();
    assert!(layer.request(LayerRequest::GetHostname).is_ok());
    agent.child.kill().unwrap();
    agent.child.wait().unwrap();
    let started = Instant::now();
    let error = loop {
        match layer.request(LayerRequest::GetHostname) {
            Err(error) => break error,
            Ok(_) if started.elapsed() < Duration::from_secs(5) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Ok(_) => panic!("requests still succeed after the agent died"),
        }
    };
    // Bounded by the loop above (no assertion on how fast: tests never depend on the machine's
    // speed); what matters is the error a layer sees.
    assert_eq!(error.code, ErrorCode::AgentLost);
}

/// The agent's file position for its descriptor of `path` (from `/proc/AGENT/fdinfo`), if it has one.
fn agent_position(agent: &Agent, path: &std::path::Path) -> Option<u64> {
    let proc_dir = PathBuf::from(format!("/proc/{}", agent.child.id()));
    for entry in std::fs::read_dir(proc_dir.join("fd")).ok()?.flatten() {
        if std::fs::read_link(entry.path()).ok().as_deref() != Some(path) {
            continue;
        }
        let info = std::fs::read_to_string(proc_dir.join("fdinfo").join(entry.file_name())).ok()?;
        return info
            .lines()
            .find_map(|line| line.strip_prefix("pos:"))
            .and_then(|pos| pos.trim().parse().ok());
    }
    None
}

fn file_request(layer: &mut Layer, request: FileRequest) -> FileResponse {
    match layer.request(LayerRequest::File(request)) {
        Ok(LayerResponse::File(response)) => response,
        other => panic!("unexpected answer: {other:?}"),
    }
}

fn read_at_position(layer: &mut Layer, handle: FileHandle, len: u32) -> Vec<u8> {
    match file_request(layer, FileRequest::Read { handle, len }) {
        FileResponse::Read(bytes) => bytes.into_vec(),
        other => panic!("unexpected answer to a read: {other:?}"),
    }
}

fn seek(layer: &mut Layer, handle: FileHandle, offset: i64, whence: Whence) -> u64 {
    match file_request(
        layer,
        FileRequest::Lseek {
            handle,
            offset,
            whence,
        },
    ) {
        FileResponse::Position(position) => position,
        other => panic!("unexpected answer to a seek: {other:?}"),
    }
}

#[test]
fn sequential_reads_are_read_ahead_without_moving_the_position_the_process_sees() {
    const CHUNK: usize = 64 * 1024;
    let token = token();
    let agent = start_agent(&token);
    let (address, _runtime) = start_intproxy(&agent, &token);
    let path = std::env::temp_dir().join(format!("mirrord-read-ahead-{}", std::process::id()));
    let content: Vec<u8> = (0..5 * CHUNK + 1000).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&path, &content).unwrap();

    let mut parent = Layer::connect(address, &token).unwrap();
    let FileResponse::Opened(handle) = file_request(
        &mut parent,
        FileRequest::Open {
            path: path.to_str().unwrap().into(),
            flags: OpenFlags::READ_ONLY,
            mode: 0,
        },
    ) else {
        panic!("the file opens");
    };
    for chunk in 0..2 {
        let bytes = read_at_position(&mut parent, handle, CHUNK as u32);
        assert!(
            bytes == content[chunk * CHUNK..(chunk + 1) * CHUNK],
            "chunk {chunk}"
        );
    }
    // Two full reads in a row: the agent is asked for the third chunk before the process asks.
    let deadline = Instant::now() + Duration::from_secs(5);
    while agent_position(&agent, &path) != Some(3 * CHUNK as u64) {
        assert!(
            Instant::now() < deadline,
            "the agent did not read ahead (its position is {:?})",
            agent_position(&agent, &path)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // The process still sees the position it read to.
    assert_eq!(
        seek(&mut parent, handle, 0, Whence::Current),
        2 * CHUNK as u64
    );
    assert_eq!(agent_position(&agent, &path), Some(2 * CHUNK as u64));

    // A read smaller than a chunk is served from what was read ahead, and a forked child sharing the
    // handle continues where its parent stopped (the offset is shared, as the kernel's is).
    for _ in 0..2 {
        read_at_position(&mut parent, handle, CHUNK as u32);
    }
    let small = read_at_position(&mut parent, handle, 1000);
    assert!(
        small == content[4 * CHUNK..4 * CHUNK + 1000],
        "a small read"
    );
    let mut child = Layer::connect(address, &token).unwrap();
    let rest = read_at_position(&mut child, handle, CHUNK as u32);
    assert!(
        rest == content[4 * CHUNK + 1000..5 * CHUNK + 1000],
        "the child continues where the parent stopped"
    );
    assert!(
        read_at_position(&mut parent, handle, CHUNK as u32).is_empty(),
        "end of file"
    );

    // Seeking drops what was read ahead; positional reads never move the position.
    assert_eq!(seek(&mut parent, handle, 10, Whence::Start), 10);
    assert_eq!(read_at_position(&mut child, handle, 100), content[10..110]);
    let FileResponse::Read(at) = file_request(
        &mut parent,
        FileRequest::Pread {
            handle,
            offset: 3 * CHUNK as u64,
            len: 5,
        },
    ) else {
        panic!("pread answers with bytes");
    };
    assert_eq!(at.into_vec(), content[3 * CHUNK..3 * CHUNK + 5]);
    assert_eq!(seek(&mut child, handle, 0, Whence::Current), 110);

    // The file changes under a process that already read ahead: after a seek it reads the new bytes.
    for _ in 0..3 {
        read_at_position(&mut parent, handle, CHUNK as u32);
    }
    let position = seek(&mut parent, handle, 0, Whence::Current);
    std::fs::write(&path, vec![b'x'; content.len()]).unwrap();
    assert_eq!(
        seek(&mut parent, handle, position as i64, Whence::Start),
        position
    );
    assert_eq!(read_at_position(&mut parent, handle, 4), b"xxxx");

    file_request(&mut parent, FileRequest::Close { handle });
    let _ = std::fs::remove_file(&path);
}

// ---------------------------------------------------------------------------------------------
// Slow, silent and greedy clients (regressions: a hello trickled one byte at a time kept its
// connection forever, every silent connection held a descriptor or a thread, and pipelined
// requests grew the agent's memory without bound).

/// A value of `/proc/PID/status` (a number, the unit dropped).
fn status_value(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Sends the start of a hello (a length prefix and then one byte at a time, never the whole frame)
/// until the server closes the connection; whether it did before `MAX_TRICKLES` bytes (the server's
/// deadline is a few seconds; the trickle lasts 15 s).
fn dropped_while_trickling(stream: &mut (impl Read + Write)) -> bool {
    const MAX_TRICKLES: usize = 50;
    if stream.write_all(&200u32.to_be_bytes()).is_err() {
        return true;
    }
    let mut buffer = [0u8; 64];
    for _ in 0..MAX_TRICKLES {
        if stream.write_all(&[0]).is_err() {
            return true;
        }
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

fn fd_socket_address(name: &str) -> std::os::unix::net::SocketAddr {
    use std::os::linux::net::SocketAddrExt;
    std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap()
}

fn fd_socket_name(label: &str) -> String {
    format!("mirrord-intproxy-test-{label}-{}", std::process::id())
}

#[test]
fn a_hello_trickled_byte_by_byte_is_dropped_by_the_agent_its_fd_socket_and_the_intproxy() {
    let token = token();
    let fd_socket = fd_socket_name("trickle");
    let agent = start_agent_with(
        &token,
        &["--communication-timeout", "60", "--fd-socket", &fd_socket],
    );
    let (intproxy, _runtime) = start_intproxy(&agent, &token);
    let pause = Some(Duration::from_millis(300));

    let mut to_agent = TcpStream::connect(agent.address).unwrap();
    to_agent.set_read_timeout(pause).unwrap();
    let mut to_fd_socket =
        std::os::unix::net::UnixStream::connect_addr(&fd_socket_address(&fd_socket)).unwrap();
    to_fd_socket.set_read_timeout(pause).unwrap();
    let mut to_intproxy = TcpStream::connect(intproxy).unwrap();
    to_intproxy.set_read_timeout(pause).unwrap();

    assert!(dropped_while_trickling(&mut to_agent), "the agent kept it");
    assert!(
        dropped_while_trickling(&mut to_fd_socket),
        "the agent's descriptor socket kept it"
    );
    assert!(
        dropped_while_trickling(&mut to_intproxy),
        "the intproxy kept it"
    );
}

#[test]
fn silent_connections_are_capped_and_hold_no_thread_each_and_others_are_still_served() {
    const SILENT: usize = 300;
    let token = token();
    let fd_socket = fd_socket_name("silent");
    let agent = start_agent_with(
        &token,
        &["--communication-timeout", "60", "--fd-socket", &fd_socket],
    );
    let pid = agent.child.id();
    let fds_before = open_fds(pid);
    let mut silent_tcp = Vec::new();
    let mut silent_unix = Vec::new();
    for _ in 0..SILENT {
        silent_tcp.push(TcpStream::connect(agent.address).unwrap());
        silent_unix.push(
            std::os::unix::net::UnixStream::connect_addr(&fd_socket_address(&fd_socket)).unwrap(),
        );
    }
    // Give the agent time to accept whatever it accepts.
    std::thread::sleep(Duration::from_millis(500));
    let threads = status_value(pid, "Threads");
    let fds = open_fds(pid);
    assert!(
        threads < 50,
        "{SILENT} silent descriptor-socket connections made {threads} threads"
    );
    assert!(
        fds < fds_before + 100,
        "{} silent connections hold {} descriptors of the agent",
        2 * SILENT,
        fds - fds_before
    );

    // A real client is served all the same, once the silent ones ran out of time.
    let mut client = TcpStream::connect(agent.address).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write_frame(
        &mut client,
        &Hello::new(token.clone(), ClientKind::IntProxy),
    )
    .unwrap();
    let reply: HelloReply = read_frame(&mut client).unwrap();
    assert!(matches!(reply, HelloReply::Welcome { .. }), "{reply:?}");
    let mut fd_client =
        std::os::unix::net::UnixStream::connect_addr(&fd_socket_address(&fd_socket)).unwrap();
    fd_client
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write_frame(
        &mut fd_client,
        &Hello::new(token.clone(), ClientKind::FdClient { pid: 1 }),
    )
    .unwrap();
    let reply: HelloReply = read_frame(&mut fd_client).unwrap();
    assert!(matches!(reply, HelloReply::Welcome { .. }), "{reply:?}");
}

#[test]
fn pipelined_requests_leave_the_agents_memory_bounded() {
    use mirrord_protocol::agent_channel::{AgentRequest, ClientToAgent};
    const REQUESTS: u64 = 1_000_000;
    let token = token();
    let agent = start_agent_with(&token, &["--communication-timeout", "60"]);
    let pid = agent.child.id();
    let mut client = TcpStream::connect(agent.address).unwrap();
    write_frame(
        &mut client,
        &Hello::new(token.clone(), ClientKind::IntProxy),
    )
    .unwrap();
    let reply: HelloReply = read_frame(&mut client).unwrap();
    assert!(matches!(reply, HelloReply::Welcome { .. }), "{reply:?}");

    // Requests are written and no answer is read: a bounded agent stops reading, and the writer
    // blocks; an unbounded one reads them all and keeps one task each.
    let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut writer = client.try_clone().unwrap();
    let counter = std::sync::Arc::clone(&written);
    std::thread::spawn(move || {
        let mut batch = Vec::new();
        for id in 0..REQUESTS {
            let request = ClientToAgent::Request {
                id: RequestId(id),
                request: AgentRequest::File(FileRequest::Stat {
                    path: "/".into(),
                    follow_symlinks: true,
                }),
            };
            mirrord_protocol::frame::encode_into(&request, &mut batch).unwrap();
            if batch.len() > 64 * 1024 {
                if writer.write_all(&batch).is_err() {
                    return;
                }
                batch.clear();
                counter.store(id, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let _ = writer.write_all(&batch);
        counter.store(REQUESTS, std::sync::atomic::Ordering::Relaxed);
    });
    // Until the writer is done or has been stuck for a second (at most a minute).
    let mut last = u64::MAX;
    for _ in 0..300 {
        std::thread::sleep(Duration::from_millis(200));
        let now = written.load(std::sync::atomic::Ordering::Relaxed);
        if now == REQUESTS || (now == last && now > 0) {
            break;
        }
        last = now;
    }
    std::thread::sleep(Duration::from_secs(1));
    let peak_kib = status_value(pid, "VmHWM");
    assert!(
        peak_kib < 64 * 1024,
        "the agent grew to {} MiB with {} pipelined requests",
        peak_kib / 1024,
        written.load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// The intproxy as `mirrord exec` runs it: the `mirrord` binary's `intproxy` command (built with the
/// workspace), killed when dropped.
struct IntproxyProcess {
    child: Child,
    address: SocketAddr,
}

impl Drop for IntproxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_intproxy_process(agent: &Agent, token: &SessionToken) -> IntproxyProcess {
    let mirrord = agent_binary().with_file_name("mirrord");
    assert!(
        mirrord.exists(),
        "{} is missing: run `cargo build --workspace` before the tests",
        mirrord.display()
    );
    let mut child = Command::new(mirrord)
        .args(["intproxy", "--agent", &agent.address.to_string()])
        .env("MIRRORD_SESSION_TOKEN", token.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the intproxy");
    let mut stdout = child.stdout.take().unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while stdout.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    let address = String::from_utf8(line)
        .unwrap()
        .strip_prefix("MIRRORD_INTPROXY_LISTENING=")
        .expect("the intproxy announces its address")
        .parse()
        .unwrap();
    IntproxyProcess { child, address }
}

/// Writes `count` pipelined requests made by `request(id)` on `stream` from a thread, reading no
/// answer, and returns once the writer is done or has been stuck for a second (at most a minute):
/// how many requests were written.
fn flood(
    mut stream: TcpStream,
    count: u64,
    request: impl Fn(u64) -> Vec<u8> + Send + 'static,
) -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    let written = std::sync::Arc::new(AtomicU64::new(0));
    let counter = std::sync::Arc::clone(&written);
    std::thread::spawn(move || {
        let mut batch = Vec::new();
        for id in 0..count {
            batch.extend_from_slice(&request(id));
            if batch.len() > 64 * 1024 {
                if stream.write_all(&batch).is_err() {
                    return;
                }
                batch.clear();
                counter.store(id, Ordering::Relaxed);
            }
        }
        let _ = stream.write_all(&batch);
        counter.store(count, Ordering::Relaxed);
    });
    let mut last = u64::MAX;
    for _ in 0..300 {
        std::thread::sleep(Duration::from_millis(200));
        let now = written.load(Ordering::Relaxed);
        if now == count || (now == last && now > 0) {
            break;
        }
        last = now;
    }
    std::thread::sleep(Duration::from_secs(1));
    written.load(Ordering::Relaxed)
}

#[test]
fn pipelined_requests_leave_the_intproxys_memory_bounded() {
    const REQUESTS: u64 = 1_000_000;
    let token = token();
    let agent = start_agent_with(&token, &["--communication-timeout", "60"]);
    let intproxy = start_intproxy_process(&agent, &token);
    let layer = Layer::connect(intproxy.address, &token).unwrap();
    let written = flood(layer.stream, REQUESTS, |id| {
        mirrord_protocol::frame::encode(&LayerToProxy::Request {
            id: RequestId(id),
            request: LayerRequest::File(FileRequest::Stat {
                path: "/".into(),
                follow_symlinks: true,
            }),
        })
        .unwrap()
    });
    let peak_kib = status_value(intproxy.child.id(), "VmHWM");
    assert!(
        peak_kib < 64 * 1024,
        "the intproxy grew to {} MiB with {written} pipelined requests",
        peak_kib / 1024
    );
}

/// Regression: an agent stayed `communication_timeout` seconds after its session's client left (200
/// back-to-back sessions had 189 agents alive); now it leaves a second after.
#[test]
fn the_agent_exits_soon_after_its_sessions_client_leaves() {
    let token = token();
    let mut agent = start_agent_with(&token, &["--communication-timeout", "60"]);
    let mut client = TcpStream::connect(agent.address).unwrap();
    write_frame(
        &mut client,
        &Hello::new(token.clone(), ClientKind::IntProxy),
    )
    .unwrap();
    let reply: HelloReply = read_frame(&mut client).unwrap();
    assert!(matches!(reply, HelloReply::Welcome { .. }), "{reply:?}");
    drop(client);
    // Bounded wait: well under the 60 s of `--communication-timeout`.
    let mut exited = None;
    for _ in 0..100 {
        if let Some(status) = agent.child.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        exited.is_some_and(|status| status.success()),
        "the agent is still running 10 s after its session's client left: {exited:?}"
    );
}
