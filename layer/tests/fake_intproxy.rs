//! Real programs (`cat`, `python3`) run with the built layer preloaded, against a stand-in for the intproxy
//! that runs in this test and speaks the real layer channel (`mirrord_protocol`): it answers the hello,
//! serves files from memory, resolves `db.sandbox.svc`, names the target `remote-host`, and relays
//! outgoing connections to echo servers of its own.
//!
//! This test builds nothing: it uses `target/debug/libmirrord_layer.so` (run `cargo build -p
//! mirrord-layer` first; CI builds the workspace before testing).
//!
//! Each test runs in a private network namespace of its own thread (with only loopback up), so that a
//! layer that failed to intercept a connection to a "remote" address could not send a packet anywhere.
//! That needs root, as every test of this project does.

use std::{
    collections::HashMap,
    ffi::OsString,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use mirrord_config::{ResolvedConfig, file::FsMode};
use mirrord_protocol::{
    ClientKind, ErrorCode, Hello, LayerRequest, LayerResponse, LayerToProxy, ProtocolVersion,
    ProxyToLayer, RemoteError, RemoteResult, SessionToken,
    dns::{AddrInfo, SocketType},
    files::{DirEntry, FileRequest, FileResponse, FileType, Metadata, Timestamp},
    outgoing::{OutgoingConnected, OutgoingUnixConnected, TransportProtocol},
    read_frame, write_frame,
};

const CONFIG_YAML: &str = "greeting: hello from the target\nreplicas: 3\n";
const DATA_TXT: &str = "remote data\n";
/// How long one program may run.
const PROGRAM_TIMEOUT: Duration = Duration::from_secs(60);

/// How the stand-in treats its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Serve everything.
    Serve,
    /// Answer the hello, then close the connection.
    CloseAfterHello,
    /// Answer the hello, then say the agent is lost at the first request.
    AgentLost,
}

/// What the stand-in saw.
#[derive(Debug, Default)]
struct Seen {
    hellos: Vec<ClientKind>,
    requests: Vec<LayerRequest>,
}

/// The stand-in intproxy and its echo servers.
struct StandIn {
    address: SocketAddr,
    token: SessionToken,
    seen: Arc<Mutex<Seen>>,
}

impl StandIn {
    fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let token = SessionToken::from_bytes([0x5a; 32]);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let relays = Relays {
            tcp_echo: start_tcp_echo(),
            udp_echo: start_udp_echo(),
            unix_echo: start_unix_echo(),
        };
        let served_token = token.clone();
        let served_seen = seen.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let token = served_token.clone();
                let seen = served_seen.clone();
                thread::spawn(move || serve(stream, &token, &seen, behaviour, relays));
            }
        });
        Self {
            address,
            token,
            seen,
        }
    }

    fn file_requests(&self) -> Vec<FileRequest> {
        self.seen
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter_map(|request| match request {
                LayerRequest::File(file) => Some(file.clone()),
                _ => None,
            })
            .collect()
    }

    fn hellos(&self) -> Vec<ClientKind> {
        self.seen.lock().unwrap().hellos.clone()
    }
}

#[derive(Debug, Clone, Copy)]
struct Relays {
    tcp_echo: SocketAddr,
    udp_echo: SocketAddr,
    /// A unix stream echo server, standing for the intproxy's unix relays.
    unix_echo: &'static str,
}

fn start_unix_echo() -> &'static str {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "mirrord-layer-unix-echo-{}-{}.sock",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            thread::spawn(move || echo(stream));
        }
    });
    Box::leak(path.to_string_lossy().into_owned().into_boxed_str())
}

/// Writes back what `stream` sends until it ends.
fn echo(mut stream: impl Read + Write) {
    let mut buffer = [0u8; 4096];
    while let Ok(count) = stream.read(&mut buffer) {
        if count == 0 || stream.write_all(&buffer[..count]).is_err() {
            break;
        }
    }
}

fn start_tcp_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            thread::spawn(move || echo(stream));
        }
    });
    address
}

fn start_udp_echo() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let address = socket.local_addr().unwrap();
    thread::spawn(move || {
        let mut buffer = [0u8; 2048];
        while let Ok((count, from)) = socket.recv_from(&mut buffer) {
            let _ = socket.send_to(&buffer[..count], from);
        }
    });
    address
}

fn serve(
    mut stream: TcpStream,
    token: &SessionToken,
    seen: &Mutex<Seen>,
    behaviour: Behaviour,
    relays: Relays,
) {
    let Ok(hello) = read_frame::<Hello, _>(&mut stream) else {
        return;
    };
    seen.lock().unwrap().hellos.push(hello.client.clone());
    let reply = hello.answer(ProtocolVersion::CURRENT, token);
    if write_frame(&mut stream, &reply).is_err() || behaviour == Behaviour::CloseAfterHello {
        return;
    }
    let mut files = RemoteFiles::default();
    while let Ok(message) = read_frame::<LayerToProxy, _>(&mut stream) {
        let answer = match message {
            LayerToProxy::Ping { nonce } => ProxyToLayer::Pong { nonce },
            LayerToProxy::Request { id, request } => {
                seen.lock().unwrap().requests.push(request.clone());
                if behaviour == Behaviour::AgentLost {
                    let _ = write_frame(
                        &mut stream,
                        &ProxyToLayer::AgentLost {
                            message: "the agent went away".into(),
                        },
                    );
                    ProxyToLayer::Response {
                        id,
                        result: Err(RemoteError::agent_lost("the agent went away")),
                    }
                } else {
                    ProxyToLayer::Response {
                        id,
                        result: answer(request, &mut files, relays),
                    }
                }
            }
        };
        if write_frame(&mut stream, &answer).is_err() {
            return;
        }
    }
}

/// The target's files, in memory.
#[derive(Default)]
struct RemoteFiles {
    next_handle: u64,
    open: HashMap<u64, (String, usize)>,
    dirs: HashMap<u64, Vec<DirEntry>>,
}

fn remote_file(path: &str) -> Option<&'static str> {
    match path {
        "/app/config.yaml" => Some(CONFIG_YAML),
        "/app/data.txt" => Some(DATA_TXT),
        _ => None,
    }
}

fn metadata(path: &str) -> Option<Metadata> {
    let time = Timestamp {
        seconds: 1_700_000_000,
        nanoseconds: 0,
    };
    let (mode, size, ino) = match path {
        "/app" => (0o040755, 4096, 100),
        "/app/config.yaml" => (0o100644, CONFIG_YAML.len() as u64, 101),
        "/app/data.txt" => (0o100644, DATA_TXT.len() as u64, 102),
        _ => return None,
    };
    Some(Metadata {
        dev: 77,
        ino,
        mode,
        nlink: 1,
        uid: 0,
        gid: 0,
        rdev: 0,
        size,
        blksize: 4096,
        blocks: size.div_ceil(512),
        atime: time,
        mtime: time,
        ctime: time,
    })
}

fn not_found(path: &str) -> RemoteError {
    RemoteError::new(ErrorCode::NotFound, format!("{path} does not exist"))
}

fn answer(
    request: LayerRequest,
    files: &mut RemoteFiles,
    relays: Relays,
) -> RemoteResult<LayerResponse> {
    match request {
        LayerRequest::File(request) => answer_file(request, files).map(LayerResponse::File),
        LayerRequest::GetAddrInfo(query) => match query.node.as_deref() {
            Some("db.sandbox.svc") => {
                let port = query
                    .service
                    .as_deref()
                    .and_then(|service| service.parse().ok())
                    .unwrap_or(0);
                let address = SocketAddr::new("10.242.0.2".parse().unwrap(), port);
                let kinds = match query.socket_type {
                    SocketType::Any => vec![(SocketType::Stream, 6), (SocketType::Datagram, 17)],
                    other => vec![(other, query.protocol)],
                };
                Ok(LayerResponse::AddrInfo(
                    kinds
                        .into_iter()
                        .map(|(socket_type, protocol)| AddrInfo {
                            socket_type,
                            protocol,
                            address,
                            canonical_name: None,
                        })
                        .collect(),
                ))
            }
            _ => Err(RemoteError::new(ErrorCode::NoSuchName, "unknown name")),
        },
        LayerRequest::GetHostname => Ok(LayerResponse::Hostname("remote-host".into())),
        LayerRequest::OutgoingConnect(connect) => {
            Ok(LayerResponse::OutgoingConnected(OutgoingConnected {
                intproxy_addr: match connect.protocol {
                    TransportProtocol::Tcp => relays.tcp_echo,
                    TransportProtocol::Udp => relays.udp_echo,
                },
                agent_local_addr: "10.242.0.9:40000".parse().unwrap(),
            }))
        }
        LayerRequest::OutgoingUnixConnect(connect) => match connect.path.as_bytes() {
            b"/run/app.sock" => Ok(LayerResponse::OutgoingUnixConnected(
                OutgoingUnixConnected {
                    intproxy_path: relays.unix_echo.into(),
                },
            )),
            _ => Err(not_found(&connect.path.to_string())),
        },
        _ => Err(RemoteError::new(
            ErrorCode::Unsupported,
            "not in the stand-in",
        )),
    }
}

fn answer_file(request: FileRequest, files: &mut RemoteFiles) -> RemoteResult<FileResponse> {
    let bad_handle = || RemoteError::new(ErrorCode::BadHandle, "no such handle");
    match request {
        FileRequest::Open { path, flags, .. } => {
            let path = path.to_string();
            if metadata(&path).is_none() {
                return Err(not_found(&path));
            }
            if flags.write {
                return Err(RemoteError::new(ErrorCode::ReadOnlyFilesystem, "read-only"));
            }
            files.next_handle += 1;
            files.open.insert(files.next_handle, (path, 0));
            Ok(FileResponse::Opened(files.next_handle.into()))
        }
        FileRequest::Read { handle, len } => {
            let (path, position) = files.open.get_mut(&handle.0).ok_or_else(bad_handle)?;
            let content = remote_file(path).unwrap_or("").as_bytes();
            let start = (*position).min(content.len());
            let end = (start + len as usize).min(content.len());
            *position = end;
            Ok(FileResponse::Read(content[start..end].to_vec().into()))
        }
        FileRequest::Pread {
            handle,
            offset,
            len,
        } => {
            let (path, _) = files.open.get(&handle.0).ok_or_else(bad_handle)?;
            let content = remote_file(path).unwrap_or("").as_bytes();
            let start = (offset as usize).min(content.len());
            let end = (start + len as usize).min(content.len());
            Ok(FileResponse::Read(content[start..end].to_vec().into()))
        }
        FileRequest::Lseek {
            handle,
            offset,
            whence,
        } => {
            let (path, position) = files.open.get_mut(&handle.0).ok_or_else(bad_handle)?;
            let len = remote_file(path).unwrap_or("").len() as i64;
            let base = match whence {
                mirrord_protocol::files::Whence::Start => 0,
                mirrord_protocol::files::Whence::Current => *position as i64,
                _ => len,
            };
            *position = (base + offset).max(0) as usize;
            Ok(FileResponse::Position(*position as u64))
        }
        FileRequest::Fstat { handle } => {
            let (path, _) = files.open.get(&handle.0).ok_or_else(bad_handle)?;
            Ok(FileResponse::Metadata(metadata(path).unwrap()))
        }
        FileRequest::Stat { path, .. } => metadata(&path.to_string())
            .map(FileResponse::Metadata)
            .ok_or_else(|| not_found(&path.to_string())),
        FileRequest::Access { path, .. } => metadata(&path.to_string())
            .map(|_| FileResponse::Done)
            .ok_or_else(|| not_found(&path.to_string())),
        FileRequest::Close { handle } => files
            .open
            .remove(&handle.0)
            .map(|_| FileResponse::Done)
            .ok_or_else(bad_handle),
        FileRequest::Opendir { path } => {
            if path.to_string() != "/app" {
                return Err(not_found(&path.to_string()));
            }
            files.next_handle += 1;
            let entries = [("config.yaml", 101), ("data.txt", 102)]
                .into_iter()
                .map(|(name, inode)| DirEntry {
                    name: name.as_bytes().to_vec(),
                    inode,
                    file_type: FileType::Regular,
                })
                .collect();
            files.dirs.insert(files.next_handle, entries);
            Ok(FileResponse::DirOpened(files.next_handle.into()))
        }
        FileRequest::Readdir { handle, .. } => {
            let entries = files.dirs.get_mut(&handle.0).ok_or_else(bad_handle)?;
            Ok(FileResponse::DirEntries(std::mem::take(entries)))
        }
        FileRequest::Closedir { handle } => files
            .dirs
            .remove(&handle.0)
            .map(|_| FileResponse::Done)
            .ok_or_else(bad_handle),
        FileRequest::Readlink { path } | FileRequest::Unlink { path } => {
            Err(not_found(&path.to_string()))
        }
        _ => Err(RemoteError::new(
            ErrorCode::Unsupported,
            "not in the stand-in",
        )),
    }
}

// ---------------------------------------------------------------------------------------------------
// running programs

/// The layer library built by `cargo build -p mirrord-layer`.
fn layer_library() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let candidates = [
        target.join("debug/libmirrord_layer.so"),
        target.join("debug/deps/libmirrord_layer.so"),
    ];
    candidates
        .iter()
        .filter_map(|path| Some((path.metadata().ok()?.modified().ok()?, path.clone())))
        .max()
        .map(|(_, path)| path)
        .unwrap_or_else(|| {
            panic!(
                "the layer library is missing (looked for {}): run `cargo build -p mirrord-layer` first",
                candidates[0].display()
            )
        })
}

/// The real Python interpreter (not a version manager's shim script).
fn python() -> PathBuf {
    let output = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 is needed by this test");
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

/// One session: a stand-in, a config and a log file.
struct Session {
    stand_in: StandIn,
    config: ResolvedConfig,
    log: PathBuf,
    _directory: TempDir,
}

impl Session {
    fn new(behaviour: Behaviour) -> Self {
        isolate_network();
        let directory = TempDir::new();
        Self {
            stand_in: StandIn::start(behaviour),
            config: ResolvedConfig::default(),
            log: directory.path.join("layer.log"),
            _directory: directory,
        }
    }

    fn environment(&self) -> Vec<(&'static str, OsString)> {
        vec![
            ("LD_PRELOAD", layer_library().into_os_string()),
            (
                "MIRRORD_LAYER_INTPROXY_ADDR",
                self.stand_in.address.to_string().into(),
            ),
            (
                "MIRRORD_LAYER_SESSION_TOKEN",
                self.stand_in.token.to_string().into(),
            ),
            ("MIRRORD_RESOLVED_CONFIG", self.config.to_json().into()),
            ("MIRRORD_LAYER_LOG", self.log.clone().into_os_string()),
            ("MIRRORD_LAYER_LOG_LEVEL", "debug".into()),
        ]
    }

    /// Runs a program under the layer, bounded by [`PROGRAM_TIMEOUT`].
    fn run(&self, program: &Path, args: &[&str]) -> Output {
        let mut command = Command::new(program);
        command
            .args(args)
            .envs(self.environment())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        run_bounded(command)
    }

    fn python(&self, script: &str) -> Output {
        self.run(&python(), &["-c", script])
    }

    /// The layer's log, for failure messages.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Asserts that the program succeeded; shows its output and the layer's log otherwise.
    fn expect_success(&self, output: &Output) -> String {
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "status {}\nstdout:\n{stdout}\nstderr:\n{}\nlayer log:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
        stdout
    }
}

fn run_bounded(mut command: Command) -> Output {
    let mut child = command.spawn().expect("the program starts");
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if started.elapsed() > PROGRAM_TIMEOUT {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "{command:?} did not finish within {PROGRAM_TIMEOUT:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A temporary directory, removed on drop.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "mirrord-layer-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Moves this test's thread (and so the stand-in and the programs it starts) into a new network
/// namespace with only loopback up.
fn isolate_network() {
    // SAFETY: unshare(2) with CLONE_NEWNET affects only the calling thread's network namespace.
    let result = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        result,
        0,
        "cannot create a network namespace ({}): these tests run as root",
        std::io::Error::last_os_error()
    );
    // SAFETY: a plain datagram socket, closed below.
    let socket = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
    assert!(socket >= 0);
    // SAFETY: `ifreq` is plain data; all zeroes is valid.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS fills the flags of the interface named in `request`.
    let got = unsafe { libc::ioctl(socket, libc::SIOCGIFFLAGS, &mut request) };
    assert_eq!(got, 0, "SIOCGIFFLAGS on lo");
    // SAFETY: the flags member is the one SIOCGIFFLAGS filled.
    unsafe { request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads the interface name and flags from `request`.
    let set = unsafe { libc::ioctl(socket, libc::SIOCSIFFLAGS, &request) };
    assert_eq!(set, 0, "SIOCSIFFLAGS on lo");
    // SAFETY: `socket` was opened above.
    unsafe { libc::close(socket) };
}

// ---------------------------------------------------------------------------------------------------
// tests

#[test]
fn cat_prints_the_targets_file() {
    let session = Session::new(Behaviour::Serve);
    let output = session.run(Path::new("cat"), &["/app/config.yaml"]);
    assert_eq!(session.expect_success(&output), CONFIG_YAML);
    let requests = session.stand_in.file_requests();
    assert!(
        requests
            .iter()
            .any(|request| matches!(request, FileRequest::Close { .. })),
        "the remote file was closed: {requests:?}"
    );
}

#[test]
fn python_sees_the_targets_files_names_hostname_and_network() {
    let session = Session::new(Behaviour::Serve);
    let local = session._directory.path.join("local.txt");
    std::fs::write(&local, "local content").unwrap();
    let script = format!(
        r#"
import json, os, socket
out = {{}}
with open('/app/config.yaml') as f:
    out['config'] = f.read()
with open('/app/data.txt', 'rb') as f:
    f.seek(7)
    out['seek_read'] = f.read().decode()
stat = os.stat('/app/config.yaml')
out['size'] = stat.st_size
out['app_is_dir'] = os.path.isdir('/app')
out['listdir'] = sorted(os.listdir('/app'))
out['scandir'] = sorted((e.name, e.is_file()) for e in os.scandir('/app'))
out['exists_missing'] = os.path.exists('/app/missing')
out['addresses'] = sorted({{info[4][0] for info in socket.getaddrinfo('db.sandbox.svc', 80)}})
out['hostname'] = socket.gethostname()
with socket.create_connection(('10.242.0.2', 7), timeout=10) as conn:
    conn.sendall(b'ping through the target')
    out['echo'] = conn.recv(100).decode()
    out['peer'] = list(conn.getpeername())
    out['sockname'] = list(conn.getsockname())
with open({local:?}) as f:
    out['local'] = f.read()
print(json.dumps(out))
"#,
        local = local.to_str().unwrap()
    );
    let output = session.python(&script);
    let stdout = session.expect_success(&output);
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(result["config"], CONFIG_YAML);
    assert_eq!(result["seek_read"], "data\n");
    assert_eq!(result["size"], CONFIG_YAML.len());
    assert_eq!(result["app_is_dir"], true);
    assert_eq!(
        result["listdir"],
        serde_json::json!(["config.yaml", "data.txt"])
    );
    assert_eq!(
        result["scandir"],
        serde_json::json!([["config.yaml", true], ["data.txt", true]])
    );
    assert_eq!(result["exists_missing"], false);
    assert_eq!(result["addresses"], serde_json::json!(["10.242.0.2"]));
    assert_eq!(result["hostname"], "remote-host");
    assert_eq!(result["echo"], "ping through the target");
    assert_eq!(result["peer"], serde_json::json!(["10.242.0.2", 7]));
    assert_eq!(result["sockname"], serde_json::json!(["10.242.0.9", 40000]));
    assert_eq!(result["local"], "local content");
    let local_bytes = local.to_str().unwrap().as_bytes();
    assert!(
        !session.stand_in.file_requests().iter().any(|request| matches!(
            request,
            FileRequest::Open { path, .. } | FileRequest::Stat { path, .. } if path.as_bytes() == local_bytes
        )),
        "the local file was asked of the target"
    );
}

#[test]
fn stdio_reads_and_gethostbyname_go_to_the_target() {
    let session = Session::new(Behaviour::Serve);
    // GNU sed reads through stdio (fopen, whose internal open is the patched one, and fclose, whose
    // internal close is `__close_nocancel`).
    let output = session.run(Path::new("sed"), &["-n", "1p", "/app/config.yaml"]);
    assert_eq!(
        session.expect_success(&output),
        CONFIG_YAML.lines().next().unwrap().to_owned() + "\n"
    );
    // Perl's gethostbyname is libc's.
    let output = session.run(
        Path::new("perl"),
        &[
            "-e",
            r#"print join(".", unpack("C4", (gethostbyname("db.sandbox.svc"))[4])), "\n""#,
        ],
    );
    assert_eq!(session.expect_success(&output).trim(), "10.242.0.2");
}

#[test]
fn node_reads_the_targets_file_and_resolves_its_names() {
    let session = Session::new(Behaviour::Serve);
    let node = which("node").expect("node is needed by this test (CI installs it)");
    let output = session.run(
        &node,
        &[
            "-e",
            r#"
const fs = require('fs');
const dns = require('dns');
const config = fs.readFileSync('/app/config.yaml', 'utf8');
dns.lookup('db.sandbox.svc', { family: 4 }, (error, address) => {
  if (error) { console.error(error); process.exit(1); }
  console.log(JSON.stringify({ config, address, entries: fs.readdirSync('/app').sort() }));
});
"#,
        ],
    );
    let stdout = session.expect_success(&output);
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(result["config"], CONFIG_YAML);
    assert_eq!(result["address"], "10.242.0.2");
    assert_eq!(
        result["entries"],
        serde_json::json!(["config.yaml", "data.txt"])
    );
}

/// The full path of a program on `PATH`.
fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|candidate| candidate.is_file())
}

/// Read with `recvfrom`, `recvmsg` or `recvmmsg` (through ctypes: Python has no binding), the
/// answer's source is the remote address, not the relay's; `sendmmsg` (ctypes too) reaches it.
#[test]
fn udp_datagrams_are_relayed_and_their_source_translated() {
    let session = Session::new(Behaviour::Serve);
    let output = session.python(
        r#"
import ctypes, select, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
remote = ('10.242.0.3', 53)
s.sendto(b'query', remote)
data, source = s.recvfrom(100)
print(data.decode(), source[0], source[1])
s.sendto(b'again', remote)
data, _, _, source = s.recvmsg(100)
print(data.decode(), source[0], source[1])

class iovec(ctypes.Structure):
    _fields_ = [('base', ctypes.c_void_p), ('len', ctypes.c_size_t)]
class msghdr(ctypes.Structure):
    _fields_ = [('name', ctypes.c_void_p), ('namelen', ctypes.c_uint32),
                ('iov', ctypes.POINTER(iovec)), ('iovlen', ctypes.c_size_t),
                ('control', ctypes.c_void_p), ('controllen', ctypes.c_size_t),
                ('flags', ctypes.c_int)]
class mmsghdr(ctypes.Structure):
    _fields_ = [('header', msghdr), ('len', ctypes.c_uint)]
libc = ctypes.CDLL(None, use_errno=True)
buffer = ctypes.create_string_buffer(100)
name = ctypes.create_string_buffer(16)
part = iovec(ctypes.cast(buffer, ctypes.c_void_p), 100)
messages = (mmsghdr * 2)()
messages[0].header.name = ctypes.cast(name, ctypes.c_void_p)
messages[0].header.namelen = 16
messages[0].header.iov = ctypes.pointer(part)
messages[0].header.iovlen = 1
s.sendto(b'batch', remote)
select.select([s], [], [], 10)
count = libc.recvmmsg(s.fileno(), messages, 1, 0, None)
assert count == 1, ctypes.get_errno()
port = int.from_bytes(name.raw[2:4], 'big')
print(buffer.raw[:messages[0].len].decode(), socket.inet_ntoa(name.raw[4:8]), port)

# Two datagrams with one sendmmsg, both to the remote address.
target = (ctypes.c_ubyte * 16)(*(b'\x02\x00' + (53).to_bytes(2, 'big') + socket.inet_aton(remote[0]) + bytes(8)))
payloads = [ctypes.create_string_buffer(b'one'), ctypes.create_string_buffer(b'two')]
parts = [iovec(ctypes.cast(p, ctypes.c_void_p), 3) for p in payloads]
out = (mmsghdr * 2)()
for index in range(2):
    out[index].header.name = ctypes.cast(target, ctypes.c_void_p)
    out[index].header.namelen = 16
    out[index].header.iov = ctypes.pointer(parts[index])
    out[index].header.iovlen = 1
sent = libc.sendmmsg(s.fileno(), out, 2, 0)
assert sent == 2, (sent, ctypes.get_errno())
answers = sorted(s.recvfrom(100)[0].decode() for _ in range(2))
print(sent, out[0].len, out[1].len, *answers)
"#,
    );
    assert_eq!(
        session.expect_success(&output).trim(),
        "query 10.242.0.3 53\nagain 10.242.0.3 53\nbatch 10.242.0.3 53\n2 3 3 one two"
    );
}

#[test]
fn a_forked_child_opens_its_own_session() {
    let session = Session::new(Behaviour::Serve);
    let output = session.python(
        r#"
import os
pid = os.fork()
if pid == 0:
    with open('/app/data.txt') as f:
        os._exit(0 if f.read() == 'remote data\n' else 3)
_, status = os.waitpid(pid, 0)
with open('/app/config.yaml') as f:
    f.read()
print(os.getpid(), pid, os.waitstatus_to_exitcode(status))
"#,
    );
    let stdout = session.expect_success(&output);
    let fields: Vec<u32> = stdout
        .split_whitespace()
        .map(|field| field.parse().unwrap())
        .collect();
    let [parent, child, status] = fields[..] else {
        panic!("unexpected output {stdout}");
    };
    assert_eq!(
        status,
        0,
        "the child read the remote file\n{}",
        session.log()
    );
    let hellos = session.stand_in.hellos();
    assert!(
        hellos.contains(&ClientKind::Layer {
            pid: child,
            parent_pid: Some(parent)
        }),
        "{hellos:?}"
    );
    assert!(
        hellos.contains(&ClientKind::Layer {
            pid: parent,
            parent_pid: None
        }),
        "{hellos:?}"
    );
}

#[test]
fn fs_mode_local_leaves_files_alone() {
    let mut session = Session::new(Behaviour::Serve);
    session.config.feature.fs.mode = FsMode::Local;
    let output = session.python(
        r#"
try:
    open('/app/config.yaml')
    print('found')
except FileNotFoundError:
    print('not found')
"#,
    );
    assert_eq!(session.expect_success(&output).trim(), "not found");
    assert!(session.stand_in.file_requests().is_empty());
}

#[test]
fn a_skipped_process_is_untouched() {
    let mut session = Session::new(Behaviour::Serve);
    session.config.skip_processes = vec!["cat".into()];
    let output = session.run(Path::new("cat"), &["/app/config.yaml"]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("No such file"),
        "{output:?}"
    );
    assert!(session.stand_in.hellos().is_empty());
}

#[test]
fn a_lost_intproxy_fails_remote_calls_fast_and_leaves_local_ones_alone() {
    for behaviour in [Behaviour::CloseAfterHello, Behaviour::AgentLost] {
        let session = Session::new(behaviour);
        let local = session._directory.path.join("local.txt");
        std::fs::write(&local, "still local").unwrap();
        let script = format!(
            r#"
import errno, time
def remote():
    started = time.monotonic()
    try:
        open('/app/config.yaml').read()
        return 'opened', 0.0
    except OSError as error:
        return errno.errorcode.get(error.errno, error.errno), time.monotonic() - started
first, first_time = remote()
with open({local:?}) as f:
    local = f.read()
second, second_time = remote()
print(first, second, local, round(max(first_time, second_time), 3))
"#,
            local = local.to_str().unwrap()
        );
        let output = session.python(&script);
        let stdout = session.expect_success(&output);
        let fields: Vec<&str> = stdout.split_whitespace().collect();
        assert_eq!(
            &fields[..4],
            ["EIO", "EIO", "still", "local"],
            "{behaviour:?}: {stdout}"
        );
        let slowest: f64 = fields[4].parse().unwrap();
        assert!(
            slowest < 2.0,
            "{behaviour:?}: a remote call took {slowest} s"
        );
        if behaviour == Behaviour::AgentLost {
            assert_eq!(
                session.stand_in.file_requests().len(),
                1,
                "only the first remote call reached the intproxy"
            );
        }
    }
}

/// The code paths of the layer's soundness fixes (issue 18): a stat that the original writes (a path
/// `mapping` rewrote to a local file) beside stats that the layer writes, `dup` through
/// `fcntl(F_DUPFD_CLOEXEC)`, `readdir`, and `freeaddrinfo` of the layer's own lists.
#[test]
fn mapped_stats_dups_listings_and_freed_address_lists_work() {
    let mut session = Session::new(Behaviour::Serve);
    let local = session._directory.path.join("mapped.txt");
    std::fs::write(&local, "twelve bytes").unwrap();
    session
        .config
        .feature
        .fs
        .mapping
        .insert("^/app/mapped\\.txt$".into(), local.display().to_string());
    let output = session.python(
        r#"
import os, socket
print(os.stat('/app/mapped.txt').st_size, os.lstat('/app/mapped.txt').st_size)
print(os.stat('/app/config.yaml').st_size)
fd = os.open('/app/config.yaml', os.O_RDONLY)
copy = os.dup(fd)
os.close(fd)
print(os.read(copy, 8).decode())
os.close(copy)
print(len(os.listdir('/app')) > 0)
for _ in range(3):
    socket.getaddrinfo('db.sandbox.svc', 80)
print('resolved')
"#,
    );
    let stdout = session.expect_success(&output);
    assert_eq!(
        stdout,
        format!(
            "12 12\n{}\n{}\nTrue\nresolved\n",
            CONFIG_YAML.len(),
            &CONFIG_YAML[..8]
        )
    );
}

/// The shims that share one body for two calls (issue 18): `readv` (with `writev`), `fstat` (with
/// `__fxstat`) and `fstatat` with a directory fd (with `statx`), on a remote file.
#[test]
fn remote_files_are_read_by_readv_and_stated_by_fd_and_by_directory() {
    let session = Session::new(Behaviour::Serve);
    let output = session.python(
        r#"
import os
fd = os.open('/app/config.yaml', os.O_RDONLY)
first, second = bytearray(4), bytearray(6)
print(os.readv(fd, [first, second]), (first + second).decode())
print(os.fstat(fd).st_size)
os.close(fd)
print(os.stat('config.yaml', dir_fd=os.open('/app', os.O_RDONLY)).st_size)
"#,
    );
    let stdout = session.expect_success(&output);
    assert_eq!(
        stdout,
        format!(
            "10 {}\n{}\n{}\n",
            &CONFIG_YAML[..10],
            CONFIG_YAML.len(),
            CONFIG_YAML.len()
        )
    );
}

/// A cluster target (no descriptor socket): a unix `connect` matching `unix_streams` is connected
/// to the relay the intproxy names (`getpeername` still names the target's path), the target's
/// errors come back as the errno, and other paths never reach the intproxy.
#[test]
fn unix_streams_are_relayed_through_the_intproxy_for_cluster_targets() {
    let mut session = Session::new(Behaviour::Serve);
    session.config.feature.network.outgoing.unix_streams =
        vec!["^/run/(app|missing)\\.sock$".into()];
    let script = r#"
import errno, socket
def attempt(path):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    try:
        s.connect(path)
        s.sendall(b"ping over unix")
        return s.recv(100).decode() + " peer " + s.getpeername()
    except OSError as error:
        return "ERR " + errno.errorcode.get(error.errno, str(error.errno))
    finally:
        s.close()
for path in ["/run/app.sock", "/run/missing.sock", "/run/mirrord-nowhere.sock"]:
    print(path, attempt(path))
"#;
    let output = session.python(script);
    let stdout = session.expect_success(&output);
    assert_eq!(
        stdout,
        "/run/app.sock ping over unix peer /run/app.sock\n/run/missing.sock ERR ENOENT\n/run/mirrord-nowhere.sock ERR ENOENT\n",
        "layer log:\n{}",
        session.log()
    );
    let asked: Vec<String> = session
        .stand_in
        .seen
        .lock()
        .unwrap()
        .requests
        .iter()
        .filter_map(|request| match request {
            LayerRequest::OutgoingUnixConnect(connect) => Some(connect.path.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(asked, ["/run/app.sock", "/run/missing.sock"]);
}
