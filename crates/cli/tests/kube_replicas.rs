//! The replica notice against a real control plane (`tests/cluster`): a deployment with two ready
//! replicas gets a notice that the other replica still receives traffic — from the IDE sidecar
//! (`mirrord ide`, driven over stdio: `mirrord/patchLaunchConfig`'s warnings) and from `mirrord
//! exec` (a `warning:` line) — and a deployment with one replica gets none, nor one with two under
//! `copy_target` (the copy gets none of the workload's traffic). Needs root, kubectl
//! and the control plane built by `tests/cluster/build.sh`.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use mirrord_test_cluster::{Cluster, ClusterOptions, IDLE_IMAGE};
use serde_json::{Value, json};

const MIRRORD: &str = env!("CARGO_BIN_EXE_mirrord");
const LIMIT: Duration = Duration::from_secs(120);
const NOTICE: &str = "ready replicas: mirrord runs next to pod";

/// A cluster with `deployment/web` (2 replicas) and `deployment/solo` (1), both ready.
fn cluster() -> Cluster {
    let cluster = Cluster::start(ClusterOptions::default());
    let deployment = |name: &str, replicas: u32| {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": name },
            "spec": {
                "replicas": replicas,
                "selector": { "matchLabels": { "app": name } },
                "template": {
                    "metadata": { "labels": { "app": name } },
                    "spec": { "terminationGracePeriodSeconds": 0,
                              "containers": [{ "name": name, "image": IDLE_IMAGE }] }
                }
            }
        })
    };
    cluster.apply(&json!({ "apiVersion": "v1", "kind": "List", "items": [deployment("web", 2), deployment("solo", 1)] }).to_string());
    for (name, ready) in [("web", "2"), ("solo", "1")] {
        cluster.wait_for(
            &["deployment", name, "-o", "jsonpath={.status.readyReplicas}"],
            ready,
            LIMIT,
        );
    }
    std::fs::create_dir_all(cluster.dir().join(".mirrord")).unwrap();
    std::fs::write(
        cluster.dir().join(".mirrord/mirrord.json"),
        json!({ "kubeconfig": cluster.kubeconfig, "feature": { "env": true } }).to_string(),
    )
    .unwrap();
    cluster
}

/// `mirrord ide` over stdio: JSON-RPC with `Content-Length` framing.
struct Sidecar {
    child: Child,
    stdin: ChildStdin,
    messages: mpsc::Receiver<Value>,
    next_id: u64,
}

impl Sidecar {
    fn start(cluster: &Cluster) -> Sidecar {
        let mut child = Command::new(MIRRORD)
            .arg("ide")
            .env("XDG_STATE_HOME", cluster.dir().join("state"))
            .env_remove("MIRRORD_CONFIG_FILE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mirrord ide starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, messages) = mpsc::channel();
        std::thread::spawn(move || read_messages(stdout, &sender));
        let mut sidecar = Sidecar {
            child,
            stdin,
            messages,
            next_id: 1,
        };
        let folder = cluster.dir().display().to_string();
        sidecar
            .request(
                "initialize",
                json!({ "processId": null, "rootUri": format!("file://{folder}"), "capabilities": {} }),
            )
            .expect("initialize succeeds");
        sidecar.send(&json!({ "jsonrpc": "2.0", "method": "initialized", "params": {} }));
        sidecar
    }

    fn send(&mut self, message: &Value) {
        let text = message.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{text}", text.len()).unwrap();
        self.stdin.flush().unwrap();
    }

    /// Sends a request and waits for its answer: the result, or the error.
    fn request(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        loop {
            let message = self
                .messages
                .recv_timeout(LIMIT)
                .unwrap_or_else(|_| panic!("no answer to {method} within {LIMIT:?}"));
            if message.get("id") == Some(&json!(id)) && message.get("method").is_none() {
                return match message.get("error") {
                    Some(error) => Err(error.clone()),
                    None => Ok(message["result"].clone()),
                };
            }
            if let (Some(request_id), Some(_)) = (message.get("id"), message.get("method")) {
                // A request of the server's (work done progress): answered with null.
                let answer = json!({ "jsonrpc": "2.0", "id": request_id, "result": null });
                self.send(&answer);
            }
        }
    }

    /// `mirrord/patchLaunchConfig` for a node launch against `target`: its warnings, the
    /// session ended again.
    fn launch_warnings(&mut self, cluster: &Cluster, target: &str) -> Vec<String> {
        let answer = self
            .request(
                "mirrord/patchLaunchConfig",
                json!({
                    "launchConfig": { "type": "node", "request": "launch", "name": "app", "program": "app.js" },
                    "workspaceFolder": cluster.dir().display().to_string(),
                    "ide": "vscode",
                    "target": target,
                }),
            )
            .unwrap_or_else(|error| {
                panic!(
                    "patchLaunchConfig for {target} failed: {error}\n{}",
                    cluster.logs()
                )
            });
        let session = answer["sessionId"].clone();
        assert!(session.is_string(), "a session started: {answer}");
        let ended = self
            .request("mirrord/endSession", json!({ "sessionId": session }))
            .unwrap();
        assert_eq!(ended["ended"], true);
        serde_json::from_value(answer["warnings"].clone()).unwrap()
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.request("shutdown", Value::Null);
        self.send(&json!({ "jsonrpc": "2.0", "method": "exit" }));
        let _ = self.child.wait();
    }
}

fn read_messages(stdout: ChildStdout, sender: &mpsc::Sender<Value>) {
    let mut reader = BufReader::new(stdout);
    loop {
        let mut length = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some(value) = line.strip_prefix("Content-Length: ") {
                length = value.parse::<usize>().ok();
            }
        }
        let mut body = vec![0; length.expect("a Content-Length header")];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if sender
            .send(serde_json::from_slice(&body).expect("JSON"))
            .is_err()
        {
            return;
        }
    }
}

/// `mirrord exec --target TARGET -- true`: its stderr (it must succeed).
fn exec_stderr(cluster: &Cluster, target: &str) -> String {
    exec_stderr_with(cluster, target, &[])
}

/// [`exec_stderr`] with more options for `mirrord exec`.
fn exec_stderr_with(cluster: &Cluster, target: &str, options: &[&str]) -> String {
    let output = Command::new(MIRRORD)
        .arg("exec")
        .args(options)
        .args(["--target", target, "--", "true"])
        .env("KUBECONFIG", &cluster.kubeconfig)
        .env_remove("MIRRORD_CONFIG_FILE")
        .current_dir(cluster.dir())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "mirrord exec --target {target}: {stderr}\n{}",
        cluster.logs()
    );
    stderr
}

#[test]
fn a_deployment_with_two_ready_replicas_gets_a_notice_and_one_with_one_does_not() {
    let cluster = cluster();
    let web_pods = cluster.get(&["pods", "-l", "app=web", "-o", "name"]);
    let web_pods: Vec<&str> = web_pods
        .lines()
        .map(|line| line.trim_start_matches("pod/"))
        .collect();
    assert_eq!(web_pods.len(), 2, "{web_pods:?}");

    let mut sidecar = Sidecar::start(&cluster);
    let warnings = sidecar.launch_warnings(&cluster, "deployment/web");
    let notice = warnings
        .iter()
        .find(|warning| warning.contains(NOTICE))
        .unwrap_or_else(|| panic!("the replica notice among the warnings: {warnings:#?}"));
    assert!(
        notice.starts_with("deployment/web has 2 ready replicas"),
        "{notice}"
    );
    assert!(
        web_pods.iter().all(|pod| notice.contains(pod)),
        "the notice names the pod mirrord runs next to and the other one: {notice} ({web_pods:?})"
    );
    let warnings = sidecar.launch_warnings(&cluster, "deployment/solo");
    assert!(
        !warnings.iter().any(|warning| warning.contains(NOTICE)),
        "one replica, no notice: {warnings:#?}"
    );
    drop(sidecar);

    let stderr = exec_stderr(&cluster, "deployment/web");
    assert!(
        stderr
            .lines()
            .any(|line| line.starts_with("warning: deployment/web has 2 ready replicas")),
        "mirrord exec prints the notice: {stderr}"
    );
    let stderr = exec_stderr(&cluster, "deployment/solo");
    assert!(!stderr.contains(NOTICE), "one replica, no notice: {stderr}");

    // With `copy_target` the session runs against a copy that has none of the workload's labels:
    // no Service sends it a share of the traffic, so there is no replica notice.
    let copy_config = cluster.dir().join("copy.json");
    std::fs::write(
        &copy_config,
        json!({ "kubeconfig": cluster.kubeconfig, "feature": { "copy_target": true } }).to_string(),
    )
    .unwrap();
    let stderr = exec_stderr_with(
        &cluster,
        "deployment/web",
        &["--config-file", &copy_config.display().to_string()],
    );
    assert!(
        stderr.contains("copying pod default/web-"),
        "the session ran against a copy: {stderr}"
    );
    assert!(
        !stderr.contains(NOTICE),
        "no replica notice under copy_target: {stderr}"
    );
}
