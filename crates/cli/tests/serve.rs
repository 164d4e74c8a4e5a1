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
use support::{MIRRORD, Sandbox, get, keep_alive_requests, nft_ruleset};

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
        let mut child = mirrord.spawn().unwrap();
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
        let mut server = Server {
            child,
            lines,
            listening: Value::Null,
        };
        let line = server.wait_for("LISTENING ");
        server.listening = serde_json::from_str(&line).unwrap();
        server
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

#[test]
fn a_python_server_receives_the_stolen_traffic_and_sees_the_remote_peer() {
    let sandbox = Sandbox::up("srv-steal");
    assert!(get(sandbox.address(), "/before").starts_with("sandbox srv-steal"));
    let server = Server::start(&sandbox, &["--steal"], &strs(&python_server("80")));
    assert_eq!(
        server.listening["address"],
        serde_json::json!(["0.0.0.0", 80]),
        "getsockname reports the port the server asked for"
    );

    let body = get(sandbox.address(), "/stolen?x=1");
    assert!(body.starts_with("local app: "), "{body}");
    let request = server.request();
    assert_eq!(request["method"], "GET");
    assert_eq!(request["path"], "/stolen?x=1");
    // The peer is this host's end of the pod's veth pair, as the pod saw it, not the intproxy.
    assert_eq!(request["accept_peer"][0], host_ip(&sandbox));
    assert_eq!(request["peer"], request["accept_peer"]);
    assert_eq!(
        request["local"],
        serde_json::json!([sandbox_ip(&sandbox), 80]),
        "getsockname on the accepted socket is the pod's address"
    );
    assert!(nft_ruleset(&sandbox.netns()).contains("mirrord_agent_"));

    // The server going away gives the port back to the pod.
    drop(server);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && nft_ruleset(&sandbox.netns()).contains("port_80") {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(get(sandbox.address(), "/after").starts_with("sandbox srv-steal"));
}

#[test]
fn mirrored_traffic_reaches_the_server_while_the_pod_keeps_answering() {
    let sandbox = Sandbox::up("srv-mirror");
    let server = Server::start(&sandbox, &[], &strs(&python_server("80")));
    let body = get(sandbox.address(), "/mirrored");
    assert!(
        body.starts_with("sandbox srv-mirror"),
        "the pod answers: {body}"
    );
    let request = server.request();
    assert_eq!(request["path"], "/mirrored");
    assert_eq!(request["accept_peer"][0], host_ip(&sandbox));
}

#[test]
fn a_header_filter_steals_only_the_matching_requests_of_one_connection() {
    let sandbox = Sandbox::up("srv-filter");
    let config = ConfigFile::new(
        "filter",
        r#"{"feature": {"network": {"incoming": {
            "mode": "steal",
            "http_filter": {"header_filter": "^x-user: me$"}
        }}}}"#,
    );
    let server = Server::start(&sandbox, &config.flag(), &strs(&python_server("80")));
    let bodies = keep_alive_requests(
        sandbox.address(),
        &[
            ("/one", &[("x-user", "me")]),
            ("/two", &[("x-user", "someone-else")]),
            ("/three", &[("x-user", "me")]),
            ("/four", &[]),
        ],
    );
    assert!(bodies[0].starts_with("local app: "), "{bodies:?}");
    assert!(bodies[1].starts_with("sandbox srv-filter"), "{bodies:?}");
    assert!(bodies[2].starts_with("local app: "), "{bodies:?}");
    assert!(bodies[3].starts_with("sandbox srv-filter"), "{bodies:?}");
    assert_eq!(server.request()["path"], "/one");
    let third = server.request();
    assert_eq!(third["path"], "/three");
    assert_eq!(third["user"], "me");
    assert!(server.reports_nothing_for(Duration::from_millis(300)));
}

#[test]
fn port_mapping_and_listen_ports_choose_the_ports() {
    let sandbox = Sandbox::up("srv-ports");
    // The server listens on 8080, which stands for the pod's port 80; locally it really listens on
    // 18080 (listen_ports), yet getsockname reports what it asked for.
    let config = ConfigFile::new(
        "ports",
        r#"{"feature": {"network": {"incoming": {
            "mode": "steal",
            "port_mapping": [[8080, 80]],
            "listen_ports": [[8080, 18080]]
        }}}}"#,
    );
    let server = Server::start(&sandbox, &config.flag(), &strs(&python_server("8080")));
    assert_eq!(
        server.listening["address"],
        serde_json::json!(["0.0.0.0", 8080])
    );
    let body = get(sandbox.address(), "/mapped");
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
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && nft_ruleset(&sandbox.netns()).contains("port_80") {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !nft_ruleset(&sandbox.netns()).contains("port_80"),
        "{}",
        nft_ruleset(&sandbox.netns())
    );
    assert!(get(sandbox.address(), "/second").starts_with("sandbox srv-close"));
}

#[test]
fn a_node_server_receives_stolen_traffic_with_the_remote_peer() {
    let sandbox = Sandbox::up("srv-node");
    let script = repo_root()
        .join("tests/e2e/server.js")
        .display()
        .to_string();
    let server = Server::start(&sandbox, &["--steal"], &["node", &script, "80"]);
    let body = get(sandbox.address(), "/from-node");
    assert!(body.starts_with("local app: "), "{body}");
    let request = server.request();
    assert_eq!(request["path"], "/from-node");
    assert_eq!(request["peer"][0], host_ip(&sandbox));
    assert_eq!(
        request["local"],
        serde_json::json!([sandbox_ip(&sandbox), 80])
    );
}
