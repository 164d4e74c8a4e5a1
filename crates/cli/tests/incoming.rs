//! Incoming traffic end to end with real parts: a sandbox pod, the real agent attached to it, the
//! real intproxy (`mirrord intproxy`), and in place of the layer a test client that speaks the
//! layer channel and listens like a user's server would. Requests come from this host to the
//! sandbox's address with real HTTP clients (raw sockets and curl).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mirrord_protocol::frame::{read_frame, write_frame};
use mirrord_protocol::handshake::{ClientKind, Hello, HelloReply};
use mirrord_protocol::ids::RequestId;
use mirrord_protocol::incoming::{
    HttpFilter, LayerPortSubscription, PortSubscription, SubscriptionMode,
};
use mirrord_protocol::layer_channel::{LayerRequest, LayerResponse, LayerToProxy, ProxyToLayer};
use mirrord_protocol::token::SessionToken;

const MIRRORD: &str = env!("CARGO_BIN_EXE_mirrord");

fn agent_binary() -> std::path::PathBuf {
    std::path::Path::new(MIRRORD).with_file_name("mirrord-agent")
}

/// A sandbox pod, removed on drop.
struct Sandbox {
    name: String,
    info: serde_json::Value,
}

impl Sandbox {
    fn up(name: &str) -> Sandbox {
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

    fn target_pid(&self) -> u32 {
        self.info["target_pid"].as_u64().unwrap() as u32
    }

    fn address(&self) -> SocketAddr {
        format!("{}:80", self.info["sandbox_ip"].as_str().unwrap())
            .parse()
            .unwrap()
    }

    fn netns(&self) -> String {
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

/// A child process killed on drop, with the `KEY=VALUE` line it announced.
struct Helper {
    child: Child,
    announced: String,
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_announcing(mut command: Command, prefix: &str) -> Helper {
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

fn token() -> SessionToken {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    SessionToken::from_bytes(bytes)
}

/// Agent + intproxy for a sandbox.
struct Session {
    agent: Helper,
    _intproxy: Helper,
    intproxy_addr: SocketAddr,
    token: SessionToken,
}

fn session(sandbox: &Sandbox) -> Session {
    let token = token();
    let mut agent = Command::new(agent_binary());
    agent
        .args([
            "--target-pid",
            &sandbox.target_pid().to_string(),
            "--communication-timeout",
            "10",
        ])
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
        _intproxy: intproxy,
        intproxy_addr,
        token,
    }
}

/// What the layer would do for a listening user server: subscribe the port.
fn subscribe(
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
            result: Ok(LayerResponse::PortSubscribed),
            ..
        } => stream,
        other => panic!("subscription failed: {other:?}"),
    }
}

/// A tiny HTTP/1.1 server standing for the user's app: answers `local app: METHOD PATH`, logs
/// every request line it sees.
fn local_app() -> (SocketAddr, mpsc::Receiver<String>) {
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
fn keep_alive_requests(address: SocketAddr, requests: &[(&str, &[(&str, &str)])]) -> Vec<String> {
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

fn get(address: SocketAddr, path: &str) -> String {
    keep_alive_requests(address, &[(path, &[])]).remove(0)
}

fn nft_ruleset(netns: &str) -> String {
    let output = Command::new("ip")
        .args(["netns", "exec", netns, "nft", "list", "ruleset"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn steal_delivers_connections_to_the_local_app_and_rules_go_with_the_subscription() {
    let sandbox = Sandbox::up("inc-steal");
    assert!(
        get(sandbox.address(), "/before").starts_with("sandbox inc-steal"),
        "the sandbox answers itself first"
    );
    let session = session(&sandbox);
    let (app, seen) = local_app();
    let subscription = subscribe(&session, 80, SubscriptionMode::Steal, app);
    assert_eq!(
        get(sandbox.address(), "/stolen"),
        "local app: GET /stolen\n"
    );
    assert_eq!(
        seen.recv_timeout(Duration::from_secs(5)).unwrap(),
        "GET /stolen"
    );
    assert!(
        nft_ruleset(&sandbox.netns()).contains("mirrord_agent_"),
        "the redirect is in the sandbox's ruleset"
    );
    // The layer going away ends the subscription and removes the rule.
    drop(subscription);
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline && nft_ruleset(&sandbox.netns()).contains("port_80") {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !nft_ruleset(&sandbox.netns()).contains("port_80"),
        "{}",
        nft_ruleset(&sandbox.netns())
    );
    assert!(get(sandbox.address(), "/after").starts_with("sandbox inc-steal"));
}

#[test]
fn mirror_keeps_the_target_answering_and_copies_requests() {
    let sandbox = Sandbox::up("inc-mirror");
    let session = session(&sandbox);
    let (app, seen) = local_app();
    let _subscription = subscribe(&session, 80, SubscriptionMode::Mirror, app);
    let bodies = keep_alive_requests(sandbox.address(), &[("/one", &[]), ("/two", &[])]);
    assert!(
        bodies
            .iter()
            .all(|body| body.starts_with("sandbox inc-mirror")),
        "{bodies:?}"
    );
    assert_eq!(
        seen.recv_timeout(Duration::from_secs(5)).unwrap(),
        "GET /one"
    );
    assert_eq!(
        seen.recv_timeout(Duration::from_secs(5)).unwrap(),
        "GET /two"
    );
}

#[test]
fn filtered_steal_routes_each_request_by_its_header_on_one_connection() {
    let sandbox = Sandbox::up("inc-filter");
    let session = session(&sandbox);
    let (app, _seen) = local_app();
    let filter = HttpFilter::Header("^x-mirrord-user: me$".to_owned());
    let _subscription = subscribe(&session, 80, SubscriptionMode::StealHttp(filter), app);
    let mine: &[(&str, &str)] = &[("x-mirrord-user", "me")];
    let bodies = keep_alive_requests(
        sandbox.address(),
        &[
            ("/a", mine),
            ("/b", &[]),
            ("/c", mine),
            ("/d", &[("x-mirrord-user", "someone")]),
        ],
    );
    assert_eq!(bodies[0], "local app: GET /a\n");
    assert!(bodies[1].starts_with("sandbox inc-filter"), "{}", bodies[1]);
    assert_eq!(bodies[2], "local app: GET /c\n");
    assert!(bodies[3].starts_with("sandbox inc-filter"), "{}", bodies[3]);

    // HTTP/2 with prior knowledge, through curl.
    let url = format!("http://{}/h2", sandbox.address());
    let curl = |header: Option<&str>| {
        let mut command = Command::new("curl");
        command.args(["-s", "--max-time", "10", "--http2-prior-knowledge", &url]);
        if let Some(header) = header {
            command.args(["-H", header]);
        }
        String::from_utf8(command.output().unwrap().stdout).unwrap()
    };
    assert_eq!(curl(Some("x-mirrord-user: me")), "local app: GET /h2\n");
    assert!(curl(None).starts_with("sandbox inc-filter"));
}

/// Kills the agent one way, then checks the target answers again within 1 s and no rule is left.
fn check_recovery_after(name: &str, kill: impl FnOnce(&mut Child)) {
    let sandbox = Sandbox::up(name);
    let mut session = session(&sandbox);
    let (app, _seen) = local_app();
    let _subscription = subscribe(&session, 80, SubscriptionMode::Steal, app);
    assert_eq!(
        get(sandbox.address(), "/stolen"),
        "local app: GET /stolen\n"
    );
    kill(&mut session.agent.child);
    session.agent.child.wait().unwrap();
    let killed = Instant::now();
    let mut answered_by_sandbox = false;
    while killed.elapsed() < Duration::from_secs(1) {
        if let Ok(body) = std::panic::catch_unwind(|| get(sandbox.address(), "/back")) {
            if body.starts_with(&format!("sandbox {name}")) {
                answered_by_sandbox = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        answered_by_sandbox,
        "the sandbox's own service did not answer within 1 s of the kill"
    );
    let ruleset = nft_ruleset(&sandbox.netns());
    assert!(!ruleset.contains("mirrord"), "rules left behind: {ruleset}");
    let iptables = Command::new("ip")
        .args(["netns", "exec", &sandbox.netns(), "iptables-save"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&iptables.stdout).contains("mirrord"));
}

#[test]
fn killing_the_agent_gives_the_port_back_within_a_second_and_leaves_no_rule() {
    check_recovery_after("inc-kill", |agent| agent.kill().unwrap());
}

#[test]
fn killing_the_agents_process_group_leaves_no_rule_either() {
    check_recovery_after("inc-killpg", |agent| {
        let group = format!("-{}", agent.id());
        let status = Command::new("kill")
            .args(["-KILL", "--", &group])
            .status()
            .unwrap();
        assert!(status.success());
    });
}

#[test]
fn filtered_steal_under_load_routes_every_request_by_its_header() {
    let sandbox = Sandbox::up("inc-load");
    let session = session(&sandbox);
    let (app, _seen) = local_app();
    let filter = HttpFilter::Header("^x-mirrord-user: me$".to_owned());
    let _subscription = subscribe(&session, 80, SubscriptionMode::StealHttp(filter), app);
    const CONNECTIONS: usize = 32;
    const REQUESTS: usize = 10_000;
    let address = sandbox.address();
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|worker| {
            std::thread::spawn(move || {
                let count = REQUESTS / CONNECTIONS + usize::from(worker < REQUESTS % CONNECTIONS);
                let mine: &[(&str, &str)] = &[("x-mirrord-user", "me")];
                let requests: Vec<(String, bool)> = (0..count)
                    .map(|i| (format!("/w{worker}/r{i}"), (worker + i) % 2 == 0))
                    .collect();
                let batch: Vec<(&str, &[(&str, &str)])> = requests
                    .iter()
                    .map(|(path, stolen)| (path.as_str(), if *stolen { mine } else { &[][..] }))
                    .collect();
                let bodies = keep_alive_requests(address, &batch);
                let mut wrong = 0;
                for ((path, stolen), body) in requests.iter().zip(&bodies) {
                    let expected = if *stolen {
                        format!("local app: GET {path}\n")
                    } else {
                        format!("sandbox inc-load: GET {path}\n")
                    };
                    if body != &expected {
                        wrong += 1;
                    }
                }
                (bodies.len(), wrong)
            })
        })
        .collect();
    let (mut answered, mut wrong) = (0, 0);
    for worker in workers {
        let (count, misrouted) = worker.join().expect("a worker failed a request");
        answered += count;
        wrong += misrouted;
    }
    assert_eq!(answered, REQUESTS, "every request is answered");
    assert_eq!(
        wrong, 0,
        "every request is answered by the side its header names"
    );
}
