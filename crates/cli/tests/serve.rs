//! A user's server, unchanged, under `mirrord exec`: the layer's `bind`/`listen`/`accept` hooks
//! subscribe its port, and the traffic that arrives at the sandbox pod reaches it (stolen, mirrored,
//! or filtered by header), with `accept`, `getpeername` and `getsockname` reporting the remote peer
//! and the pod's address. Real python3 (`http.server`) and node (`http`) servers; requests come
//! from this host to the pod's address.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{MIRRORD, Sandbox, get, keep_alive_requests, nft_ruleset, redirect_removed};

/// A server started under `mirrord exec`, its whole process group killed on drop.
struct Server {
    child: Child,
    lines: Receiver<String>,
    /// What it printed when it started listening.
    listening: Value,
}

impl Server {
    /// `mirrord exec --target sandbox/NAME FLAGS -- COMMAND`, waiting for `LISTENING`.
    fn start(sandbox: &Sandbox, flags: &[&str], command: &[&str]) -> Server {
        let mut mirrord = Command::new(MIRRORD);
        mirrord
            .args(["exec", "--target", &format!("sandbox/{}", sandbox.name)])
            .args(flags)
            .arg("--")
            .args(command)
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut mirrord, 0);
        let mut server = Server::from_child(mirrord.spawn().unwrap());
        let line = server.wait_for("LISTENING ");
        server.listening = serde_json::from_str(&line).unwrap();
        server
    }

    /// Collects the lines of a started group leader's stdout and stderr.
    fn from_child(mut child: Child) -> Server {
        let (sender, lines) = mpsc::channel();
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let _ = sender.send(line);
                }
            });
        }
        Server {
            child,
            lines,
            listening: Value::Null,
        }
    }

    /// The rest of the next line starting with `prefix` (other lines are skipped).
    fn wait_for(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => match line.strip_prefix(prefix) {
                    Some(rest) => return rest.to_owned(),
                    None => seen.push(line),
                },
                Err(_) => break,
            }
        }
        panic!(
            "no line starting with {prefix:?}; the server printed:\n{}",
            seen.join("\n")
        );
    }

    /// The next request the server reported.
    fn request(&self) -> Value {
        serde_json::from_str(&self.wait_for("REQUEST ")).unwrap()
    }

    /// Whether the server reports a request within `wait`.
    fn reports_nothing_for(&self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with("REQUEST ") => return false,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        true
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn python_server(port: &str) -> Vec<String> {
    vec![
        "python3".into(),
        repo_root()
            .join("tests/e2e/server.py")
            .display()
            .to_string(),
        port.into(),
    ]
}

fn strs(items: &[String]) -> Vec<&str> {
    items.iter().map(String::as_str).collect()
}

/// A config file for one test, removed on drop.
struct ConfigFile(PathBuf);

impl ConfigFile {
    fn new(label: &str, json: &str) -> ConfigFile {
        let path =
            std::env::temp_dir().join(format!("mirrord-serve-{label}-{}.json", std::process::id()));
        std::fs::write(&path, json).unwrap();
        ConfigFile(path)
    }

    fn flag(&self) -> [&str; 2] {
        ["--config-file", self.0.to_str().unwrap()]
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn host_ip(sandbox: &Sandbox) -> &str {
    sandbox.info["host_ip"].as_str().unwrap()
}

fn sandbox_ip(sandbox: &Sandbox) -> &str {
    sandbox.info["sandbox_ip"].as_str().unwrap()
}

/// `curl` from this host; the response body.
fn curl(url: &str, extra: &[&str]) -> String {
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--fail", "--max-time", "10"])
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn url(sandbox: &Sandbox, path: &str) -> String {
    format!("http://{}{path}", sandbox.address())
}

fn node_server(port: &str) -> Vec<String> {
    vec![
        "node".into(),
        repo_root()
            .join("tests/e2e/server.js")
            .display()
            .to_string(),
        port.into(),
    ]
}

/// Steal: the local server answers curl, sees the remote peer and the pod's address; when it
/// exits, its rules go and the pod answers again.
fn check_steal(name: &str, server: &[String]) {
    let sandbox = Sandbox::up(name);
    assert!(curl(&url(&sandbox, "/before"), &[]).starts_with(&format!("sandbox {name}")));
    let running = Server::start(&sandbox, &["--steal"], &strs(server));
    assert_eq!(
        running.listening["address"][1], 80,
        "getsockname reports the port the server asked for"
    );
    let body = curl(&url(&sandbox, "/stolen?x=1"), &[]);
    assert!(body.starts_with("local app: "), "{body}");
    let request = running.request();
    assert_eq!(request["method"], "GET");
    assert_eq!(request["path"], "/stolen?x=1");
    // The peer is this host's end of the pod's veth pair, as the pod saw it, not the intproxy.
    assert_eq!(request["peer"][0], host_ip(&sandbox));
    if let Some(accept_peer) = request.get("accept_peer") {
        assert_eq!(
            accept_peer, &request["peer"],
            "accept reports the same peer"
        );
    }
    assert_eq!(
        request["local"][1], 80,
        "getsockname on the accepted socket is the pod's port"
    );
    assert_eq!(
        request["local"][0]
            .as_str()
            .map(|ip| ip.trim_start_matches("::ffff:")),
        Some(sandbox_ip(&sandbox)),
        "and the pod's address"
    );
    assert!(nft_ruleset(&sandbox.netns()).contains("port_80"));

    // The user process exiting ends the subscription and removes its rules.
    drop(running);
    assert!(
        redirect_removed(&sandbox, 80),
        "{}",
        nft_ruleset(&sandbox.netns())
    );
    assert!(curl(&url(&sandbox, "/after"), &[]).starts_with(&format!("sandbox {name}")));
}

/// Mirror: the pod's own service answers curl, and the local server sees the same request.
fn check_mirror(name: &str, server: &[String]) {
    let sandbox = Sandbox::up(name);
    let running = Server::start(&sandbox, &[], &strs(server));
    let body = curl(&url(&sandbox, "/mirrored"), &["-H", "x-mirrord-user: me"]);
    assert!(
        body.starts_with(&format!("sandbox {name}")),
        "the pod answers: {body}"
    );
    let request = running.request();
    assert_eq!(request["path"], "/mirrored");
    assert_eq!(request["user"], "me");
    assert_eq!(request["peer"][0], host_ip(&sandbox));
}

/// Filtered steal: requests with `x-mirrord-user: me` are answered locally, all others by the pod,
/// on one keep-alive connection and over HTTP/2 (prior knowledge).
fn check_filtered(name: &str, server: &[String]) {
    let sandbox = Sandbox::up(name);
    let config = ConfigFile::new(
        name,
        r#"{"feature": {"network": {"incoming": {
            "mode": "steal",
            "http_filter": {"header_filter": "^x-mirrord-user: me$"}
        }}}}"#,
    );
    let running = Server::start(&sandbox, &config.flag(), &strs(server));
    let pod = format!("sandbox {name}");

    let mine = curl(&url(&sandbox, "/mine"), &["-H", "x-mirrord-user: me"]);
    assert!(mine.starts_with("local app: "), "{mine}");
    assert_eq!(running.request()["path"], "/mine");
    let theirs = curl(
        &url(&sandbox, "/theirs"),
        &["-H", "x-mirrord-user: someone"],
    );
    assert!(theirs.starts_with(&pod), "{theirs}");
    assert!(curl(&url(&sandbox, "/plain"), &[]).starts_with(&pod));

    let bodies = keep_alive_requests(
        sandbox.address(),
        &[
            ("/one", &[("x-mirrord-user", "me")]),
            ("/two", &[("x-mirrord-user", "someone-else")]),
            ("/three", &[("x-mirrord-user", "me")]),
            ("/four", &[]),
        ],
    );
    assert!(bodies[0].starts_with("local app: "), "{bodies:?}");
    assert!(bodies[1].starts_with(&pod), "{bodies:?}");
    assert!(bodies[2].starts_with("local app: "), "{bodies:?}");
    assert!(bodies[3].starts_with(&pod), "{bodies:?}");
    assert_eq!(running.request()["path"], "/one");
    assert_eq!(running.request()["path"], "/three");

    let h2 = ["--http2-prior-knowledge", "-H", "x-mirrord-user: me"];
    let mine = curl(&url(&sandbox, "/h2-mine"), &h2);
    assert!(mine.starts_with("local app: "), "{mine}");
    assert_eq!(running.request()["path"], "/h2-mine");
    let theirs = curl(&url(&sandbox, "/h2-theirs"), &["--http2-prior-knowledge"]);
    assert!(theirs.starts_with(&pod), "{theirs}");
    assert!(running.reports_nothing_for(Duration::from_millis(300)));
}

#[test]
fn python_http_server_steal() {
    check_steal("srv-py-steal", &python_server("80"));
}

#[test]
fn python_http_server_mirror() {
    check_mirror("srv-py-mirror", &python_server("80"));
}

#[test]
fn python_http_server_filtered_steal() {
    check_filtered("srv-py-filter", &python_server("80"));
}

#[test]
fn node_http_server_steal() {
    check_steal("srv-js-steal", &node_server("80"));
}

#[test]
fn node_http_server_mirror() {
    check_mirror("srv-js-mirror", &node_server("80"));
}

#[test]
fn node_http_server_filtered_steal() {
    check_filtered("srv-js-filter", &node_server("80"));
}

#[test]
fn port_mapping_and_listen_ports_choose_the_ports() {
    let sandbox = Sandbox::up("srv-ports");
    // The server listens on 9333, which stands for the pod's port 80; locally it really listens on
    // 18080 (listen_ports), yet getsockname reports what it asked for.
    let config = ConfigFile::new(
        "ports",
        r#"{"feature": {"network": {"incoming": {
            "mode": "steal",
            "port_mapping": [[9333, 80]],
            "listen_ports": [[9333, 18080]]
        }}}}"#,
    );
    let server = Server::start(&sandbox, &config.flag(), &strs(&python_server("9333")));
    assert_eq!(
        server.listening["address"],
        serde_json::json!(["0.0.0.0", 9333])
    );
    let body = curl(&url(&sandbox, "/mapped"), &[]);
    assert!(body.starts_with("local app: "), "{body}");
    assert_eq!(server.request()["path"], "/mapped");
    // Locally it is reachable on the real port.
    let local = get("127.0.0.1:18080".parse().unwrap(), "/local");
    assert!(local.starts_with("local app: "), "{local}");
    let request = server.request();
    assert_eq!(request["path"], "/local");
    assert_eq!(
        request["accept_peer"][0], "127.0.0.1",
        "a local client is reported as itself"
    );
}

#[test]
fn ignored_ports_stay_local() {
    let sandbox = Sandbox::up("srv-ignore");
    let config = ConfigFile::new(
        "ignore",
        r#"{"feature": {"network": {"incoming": {"mode": "steal", "ignore_ports": [18081]}}}}"#,
    );
    let server = Server::start(&sandbox, &config.flag(), &strs(&python_server("18081")));
    assert!(
        get(sandbox.address(), "/not-stolen").starts_with("sandbox srv-ignore"),
        "nothing is subscribed"
    );
    assert!(!nft_ruleset(&sandbox.netns()).contains("mirrord_agent_"));
    let local = get("127.0.0.1:18081".parse().unwrap(), "/local");
    assert!(local.starts_with("local app: "), "{local}");
    assert_eq!(server.request()["path"], "/local");
}

#[test]
fn closing_the_listener_gives_the_port_back_while_the_process_runs() {
    let sandbox = Sandbox::up("srv-close");
    let mut command = python_server("80");
    command.push("--close-after-first".into());
    let server = Server::start(&sandbox, &["--steal"], &strs(&command));
    assert!(get(sandbox.address(), "/first").starts_with("local app: "));
    server.wait_for("CLOSED");
    assert!(
        redirect_removed(&sandbox, 80),
        "{}",
        nft_ruleset(&sandbox.netns())
    );
    assert!(get(sandbox.address(), "/second").starts_with("sandbox srv-close"));
}

#[test]
fn a_second_session_stealing_the_same_port_gets_a_clear_error() {
    let sandbox = Sandbox::up("srv-twice");
    let first = Server::start(&sandbox, &["--steal"], &strs(&python_server("80")));
    let mut second = Command::new(MIRRORD);
    second
        .args([
            "exec",
            "--target",
            &format!("sandbox/{}", sandbox.name),
            "--steal",
            "--",
        ])
        .args(python_server("80"))
        .current_dir(repo_root())
        .stdin(Stdio::null());
    let output = second.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("port 80 of the target is already taken by another mirrord session"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Address already in use"),
        "python sees EADDRINUSE: {stderr}"
    );
    // The first session is undisturbed.
    assert!(curl(&url(&sandbox, "/still-mine"), &[]).starts_with("local app: "));
    // (The second `mirrord exec` checked the sandbox's health first: that request was stolen too.)
    let mut paths = Vec::new();
    while paths.last().is_none_or(|path| path != "/still-mine") {
        paths.push(first.request()["path"].as_str().unwrap().to_owned());
    }
}

/// One HTTP/1.1 request on an open keep-alive connection; the response body.
fn request_on(reader: &mut BufReader<std::net::TcpStream>, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    reader
        .get_mut()
        .write_all(format!("GET {path} HTTP/1.1\r\nhost: pod\r\n\r\n").as_bytes())?;
    let mut status = String::new();
    if reader.read_line(&mut status)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        if header == "\r\n" || header.is_empty() {
            break;
        }
        if let Some(value) = header.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

fn open_connection(sandbox: &Sandbox) -> BufReader<std::net::TcpStream> {
    let stream =
        std::net::TcpStream::connect_timeout(&sandbox.address(), Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    BufReader::new(stream)
}

#[test]
fn stealing_closes_the_connections_the_pod_already_had() {
    let sandbox = Sandbox::up("srv-flush");
    let mut old = open_connection(&sandbox);
    assert!(
        request_on(&mut old, "/before")
            .unwrap()
            .starts_with("sandbox srv-flush")
    );
    let server = Server::start(&sandbox, &["--steal"], &strs(&python_server("80")));
    // agent.flush_connections (on by default) reset the connection, so its client reconnects…
    assert!(
        request_on(&mut old, "/on-the-old-connection").is_err(),
        "the connection opened before the steal is closed"
    );
    // …into the redirect.
    let mut new = open_connection(&sandbox);
    assert!(
        request_on(&mut new, "/reconnected")
            .unwrap()
            .starts_with("local app: ")
    );
    assert_eq!(server.request()["path"], "/reconnected");
}

#[test]
fn without_flush_connections_existing_connections_keep_reaching_the_pod() {
    let sandbox = Sandbox::up("srv-noflush");
    let config = ConfigFile::new(
        "noflush",
        r#"{"agent": {"flush_connections": false}, "feature": {"network": {"incoming": "steal"}}}"#,
    );
    let mut old = open_connection(&sandbox);
    assert!(
        request_on(&mut old, "/before")
            .unwrap()
            .starts_with("sandbox srv-noflush")
    );
    let server = Server::start(&sandbox, &config.flag(), &strs(&python_server("80")));
    assert!(
        request_on(&mut old, "/still-the-pod")
            .unwrap()
            .starts_with("sandbox srv-noflush")
    );
    assert!(curl(&url(&sandbox, "/new"), &[]).starts_with("local app: "));
    assert_eq!(server.request()["path"], "/new");
}

#[test]
fn a_port_nothing_in_the_pod_listens_on_is_subscribed_with_a_warning() {
    let sandbox = Sandbox::up("srv-unheard");
    let mut mirrord = Command::new(MIRRORD);
    mirrord
        .args([
            "exec",
            "--target",
            &format!("sandbox/{}", sandbox.name),
            "--steal",
            "--",
        ])
        .args(python_server("8081"))
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    std::os::unix::process::CommandExt::process_group(&mut mirrord, 0);
    let server = Server::from_child(mirrord.spawn().unwrap());
    // The warning (stderr) and LISTENING (stdout) come on two pipes, in either order.
    let (mut warning, mut listening) = (None, false);
    while warning.is_none() || !listening {
        let line = server
            .lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the warning and LISTENING");
        if let Some(rest) = line.strip_prefix("mirrord: warning: ") {
            warning = Some(rest.to_owned());
        }
        listening |= line.starts_with("LISTENING ");
    }
    let warning = warning.unwrap();
    assert!(
        warning.contains("nothing in the target listens on port 8081"),
        "{warning}"
    );
    // Still subscribed: traffic to the port reaches the server.
    let address = format!("http://{}:8081/anyway", sandbox_ip(&sandbox));
    assert!(curl(&address, &[]).starts_with("local app: "));
    assert_eq!(server.request()["path"], "/anyway");
}
