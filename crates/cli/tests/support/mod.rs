//! Shared by the integration tests and benchmarks: a sandbox pod, the real agent and intproxy
//! for it, a layer-channel client that subscribes ports like the layer does, and a small HTTP/1.1
//! app standing for the user's server; `e2e` runs programs under `mirrord exec`, bounded.

#![allow(
    dead_code,
    reason = "each user of this module uses a different part of it"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub(crate) mod e2e;

use mirrord_protocol::frame::{read_frame, write_frame};
use mirrord_protocol::handshake::{ClientKind, Hello, HelloReply};
use mirrord_protocol::ids::RequestId;
use mirrord_protocol::incoming::{LayerPortSubscription, PortSubscription, SubscriptionMode};
use mirrord_protocol::layer_channel::{LayerRequest, LayerResponse, LayerToProxy, ProxyToLayer};
use mirrord_protocol::token::SessionToken;

pub(crate) const MIRRORD: &str = env!("CARGO_BIN_EXE_mirrord");

pub(crate) fn agent_binary() -> std::path::PathBuf {
    std::path::Path::new(MIRRORD).with_file_name("mirrord-agent")
}

/// A sandbox pod, removed on drop.
pub(crate) struct Sandbox {
    pub(crate) name: String,
    pub(crate) info: serde_json::Value,
}

impl Sandbox {
    pub(crate) fn up(name: &str) -> Sandbox {
        let _ = Command::new(MIRRORD)
            .args(["sandbox", "down", name])
            .output();
        let output = Command::new(MIRRORD)
            .args(["sandbox", "up", name, "--output", "json"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "sandbox up: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Sandbox {
            name: name.to_owned(),
            info: serde_json::from_slice(&output.stdout).unwrap(),
        }
    }

    pub(crate) fn target_pid(&self) -> u32 {
        self.info["target_pid"].as_u64().unwrap() as u32
    }

    pub(crate) fn address(&self) -> SocketAddr {
        format!("{}:80", self.info["sandbox_ip"].as_str().unwrap())
            .parse()
            .unwrap()
    }

    pub(crate) fn netns(&self) -> String {
        self.info["netns"].as_str().unwrap().to_owned()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = Command::new(MIRRORD)
            .args(["sandbox", "down", &self.name])
            .output();
    }
}

/// A child that leads its own process group: the whole group is killed (`kill -KILL -- -GROUP`)
/// and the child reaped when dropped.
pub(crate) struct GroupLeader(pub(crate) Child);

impl Drop for GroupLeader {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.wait();
    }
}

/// A child process killed on drop, with the `KEY=VALUE` line it announced.
pub(crate) struct Helper {
    pub(crate) child: Child,
    pub(crate) announced: String,
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn spawn_announcing(mut command: Command, prefix: &str) -> Helper {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (line_tx, line_rx) = mpsc::channel();
    let prefix = prefix.to_owned();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let line = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned));
        let _ = line_tx.send(line);
        for _ in lines {}
    });
    let announced = line_rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap()
        .expect("announced");
    Helper { child, announced }
}

pub(crate) fn token() -> SessionToken {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    SessionToken::from_bytes(bytes)
}

/// Agent + intproxy for a sandbox.
pub(crate) struct Session {
    pub(crate) agent: Helper,
    pub(crate) intproxy: Helper,
    pub(crate) intproxy_addr: SocketAddr,
    pub(crate) token: SessionToken,
}

pub(crate) fn session(sandbox: &Sandbox) -> Session {
    session_with(sandbox, &[])
}

/// Like [`session`], with more arguments for the agent.
pub(crate) fn session_with(sandbox: &Sandbox, agent_args: &[&str]) -> Session {
    let token = token();
    let mut agent = Command::new(agent_binary());
    agent
        .args([
            "--target-pid",
            &sandbox.target_pid().to_string(),
            "--communication-timeout",
            "10",
        ])
        .args(agent_args)
        .env("MIRRORD_AGENT_TOKEN", token.to_string());
    // Like `mirrord exec`, the agent gets a process group of its own.
    std::os::unix::process::CommandExt::process_group(&mut agent, 0);
    let agent = spawn_announcing(agent, "MIRRORD_AGENT_LISTENING=");
    let mut intproxy = Command::new(MIRRORD);
    intproxy
        .args([
            "intproxy",
            "--agent",
            &agent.announced,
            "--idle-timeout",
            "5",
        ])
        .env("MIRRORD_SESSION_TOKEN", token.to_string());
    let intproxy = spawn_announcing(intproxy, "MIRRORD_INTPROXY_LISTENING=");
    let intproxy_addr = intproxy.announced.parse().unwrap();
    Session {
        agent,
        intproxy,
        intproxy_addr,
        token,
    }
}

/// What the layer would do for a listening user server: subscribe the port.
pub(crate) fn subscribe(
    session: &Session,
    port: u16,
    mode: SubscriptionMode,
    listening_on: SocketAddr,
) -> TcpStream {
    let mut stream = TcpStream::connect(session.intproxy_addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write_frame(
        &mut stream,
        &Hello::new(
            session.token.clone(),
            ClientKind::Layer {
                pid: std::process::id(),
                parent_pid: None,
            },
        ),
    )
    .unwrap();
    assert!(matches!(
        read_frame::<HelloReply, _>(&mut stream).unwrap(),
        HelloReply::Welcome { .. }
    ));
    let request = LayerRequest::PortSubscribe(LayerPortSubscription {
        subscription: PortSubscription { port, mode },
        listening_on,
    });
    write_frame(
        &mut stream,
        &LayerToProxy::Request {
            id: RequestId(1),
            request,
        },
    )
    .unwrap();
    match read_frame::<ProxyToLayer, _>(&mut stream).unwrap() {
        ProxyToLayer::Response {
            result: Ok(LayerResponse::PortSubscribed | LayerResponse::PortSubscribedWithWarning(_)),
            ..
        } => stream,
        other => panic!("subscription failed: {other:?}"),
    }
}

/// A tiny HTTP/1.1 server standing for the user's app: answers `local app: METHOD PATH`, logs
/// every request line it sees.
pub(crate) fn local_app() -> (SocketAddr, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let (seen_tx, seen_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let seen_tx = seen_tx.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut content_length = 0;
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).unwrap_or(0) == 0 {
                            return;
                        }
                        if header == "\r\n" {
                            break;
                        }
                        if let Some(value) =
                            header.to_ascii_lowercase().strip_prefix("content-length:")
                        {
                            content_length = value.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; content_length];
                    let _ = reader.read_exact(&mut body);
                    let mut parts = request_line.split_whitespace();
                    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                    let _ = seen_tx.send(format!("{method} {path}"));
                    let body = format!("local app: {method} {path}\n");
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nx-served-by: local-app\r\n\r\n{body}",
                        body.len()
                    );
                    if writer.write_all(response.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (address, seen_rx)
}

/// Sends raw HTTP/1.1 requests on ONE keep-alive connection and returns each response body.
pub(crate) fn keep_alive_requests(
    address: SocketAddr,
    requests: &[(&str, &[(&str, &str)])],
) -> Vec<String> {
    let stream = TcpStream::connect_timeout(&address, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut bodies = Vec::new();
    for (path, headers) in requests {
        let mut request = format!("GET {path} HTTP/1.1\r\nhost: sandbox\r\n");
        for (name, value) in *headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        writer.write_all(request.as_bytes()).unwrap();
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(
            status.starts_with("HTTP/1.1 200"),
            "status line: {status:?}"
        );
        let mut content_length = 0;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            if header == "\r\n" {
                break;
            }
            if let Some(value) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                content_length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; content_length];
        reader.read_exact(&mut body).unwrap();
        bodies.push(String::from_utf8(body).unwrap());
    }
    bodies
}

pub(crate) fn get(address: SocketAddr, path: &str) -> String {
    keep_alive_requests(address, &[(path, &[])]).remove(0)
}

/// `iptables-save` inside the network namespace `netns`.
pub(crate) fn iptables_rules(netns: &str) -> String {
    let output = Command::new("ip")
        .args(["netns", "exec", netns, "iptables-save"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Whether the redirect chain of `port` is gone from the sandbox's nftables ruleset, waiting up to
/// 10 s for it to go.
pub(crate) fn redirect_removed(sandbox: &Sandbox, port: u16) -> bool {
    let chain = format!("port_{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline && nft_ruleset(&sandbox.netns()).contains(&chain) {
        std::thread::sleep(Duration::from_millis(50));
    }
    !nft_ruleset(&sandbox.netns()).contains(&chain)
}

/// A local TCP echo server for one connection; its address.
pub(crate) fn echo_server() -> SocketAddr {
    let echo = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = echo.local_addr().unwrap();
    std::thread::spawn(move || {
        if let Ok((stream, _)) = echo.accept() {
            let mut reader = stream.try_clone().unwrap();
            let mut writer = stream;
            let _ = std::io::copy(&mut reader, &mut writer);
        }
    });
    address
}

pub(crate) fn nft_ruleset(netns: &str) -> String {
    let output = Command::new("ip")
        .args(["netns", "exec", netns, "nft", "list", "ruleset"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}
