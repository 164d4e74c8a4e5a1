//! `mirrord ls` and `mirrord exec` against a real Kubernetes control plane (`tests/cluster`:
//! etcd, kube-apiserver, controller-manager, scheduler, kwok and the node runner), whose workloads
//! are made by the real controllers and whose `api` Deployment's pod is backed by a sandbox pod;
//! checked against a real client, kubectl. Needs root (sandboxes), python3, kubectl and the
//! control plane built by `tests/cluster/build.sh`.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use mirrord_test_cluster::{Backing, Cluster, ClusterOptions, NODE_NAME};
use support::{MIRRORD, Sandbox};

fn mirrord(cluster: &Cluster) -> Command {
    let mut command = Command::new(MIRRORD);
    command
        .env("KUBECONFIG", &cluster.kubeconfig)
        .env_remove("MIRRORD_CONFIG_FILE")
        .current_dir(cluster.dir());
    command
}

fn json_of(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A cluster whose `deployment/api` runs on the sandbox pod `sandbox`.
fn cluster_on(sandbox: &Sandbox) -> Cluster {
    let cluster = Cluster::start(ClusterOptions::default());
    cluster.create_workloads(Backing::Sandbox(&sandbox.name), false);
    cluster
}

fn write_config(cluster: &Cluster, json: &str) -> String {
    let path = cluster.dir().join("mirrord.json");
    std::fs::write(&path, json).unwrap();
    path.display().to_string()
}

/// What is left of a session in the namespace, as kubectl sees it.
fn leftovers(cluster: &Cluster) -> String {
    cluster.get(&[
        "jobs,pods,secrets",
        "-l",
        "mirrord.dev/session",
        "-o",
        "name",
    ])
}

#[test]
fn ls_agrees_with_kubectl_for_every_kind() {
    let cluster = Cluster::start(ClusterOptions { rollouts: true });
    cluster.create_workloads(Backing::Idle, true);
    cluster.wait_for_cronjob_run();
    let listing = json_of(
        &mirrord(&cluster)
            .args(["ls", "--output", "json"])
            .output()
            .unwrap(),
    );
    assert_eq!(listing["currentNamespace"], "default");
    let namespaces: Vec<String> = cluster
        .get(&["namespaces", "-o", "jsonpath={.items[*].metadata.name}"])
        .split(' ')
        .map(str::to_owned)
        .collect();
    assert_eq!(listing["namespaces"], serde_json::json!(namespaces));
    let targets = listing["targets"].as_array().unwrap();
    let listed = |path: &str| {
        targets
            .iter()
            .find(|t| t["path"] == path)
            .unwrap_or_else(|| panic!("{path} not listed: {listing:#}"))["available"]
            .as_bool()
            .unwrap()
    };
    let from_kubectl = json_of(
        &cluster
            .kubectl()
            .args([
                "get",
                "pods,deployments,statefulsets,replicasets,jobs,cronjobs,rollouts",
                "-o",
                "json",
            ])
            .output()
            .unwrap(),
    );
    let mut counted = std::collections::BTreeMap::<String, usize>::new();
    for item in from_kubectl["items"].as_array().unwrap() {
        let name = item["metadata"]["name"].as_str().unwrap();
        let kind = item["kind"].as_str().unwrap().to_lowercase();
        *counted.entry(kind.clone()).or_default() += 1;
        let available = listed(&format!("{kind}/{name}"));
        let expected = match kind.as_str() {
            "pod" => item["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True"),
            "deployment" | "replicaset" => {
                item["status"]["availableReplicas"].as_u64().unwrap_or(0) > 0
            }
            "statefulset" => item["status"]["readyReplicas"].as_u64().unwrap_or(0) > 0,
            "job" => item["status"]["ready"].as_u64().unwrap_or(0) > 0,
            "cronjob" => item["status"]["active"]
                .as_array()
                .is_some_and(|a| !a.is_empty()),
            "rollout" => item["status"]["availableReplicas"].as_u64().unwrap_or(0) > 0,
            other => panic!("unexpected kind {other}"),
        };
        assert_eq!(available, expected, "{kind}/{name}: {item:#}");
    }
    for kind in [
        "pod",
        "deployment",
        "statefulset",
        "replicaset",
        "job",
        "cronjob",
        "rollout",
    ] {
        let listed = targets
            .iter()
            .filter(|t| t["kind"] == kind && !t["path"].as_str().unwrap().contains("/container/"))
            .count();
        assert_eq!(
            Some(&listed),
            counted.get(kind),
            "{kind}: mirrord ls {listing:#}"
        );
    }
    assert!(!listed("deployment/legacy"), "its image cannot be pulled");
    assert!(listed("deployment/api"));
    // $HTTPS_PROXY does not apply to an API server on a loopback address (kubectl's rule): with
    // it naming a port where nothing listens, the listing is the same.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let through_environment = json_of(
        &mirrord(&cluster)
            .env("HTTPS_PROXY", format!("http://{closed}"))
            .args(["ls", "--output", "json"])
            .output()
            .unwrap(),
    );
    assert_eq!(through_environment["namespaces"], listing["namespaces"]);
    assert!(
        through_environment["targets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["path"] == "deployment/api"),
        "{through_environment:#}"
    );
    // The other namespace, as kubectl lists it.
    let staging = json_of(
        &mirrord(&cluster)
            .args(["ls", "--namespace", "staging", "--output", "json"])
            .output()
            .unwrap(),
    );
    let paths: Vec<&str> = staging["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "deployment")
        .map(|t| t["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["deployment/cache"]);
}

#[test]
fn ls_without_a_cluster_lists_sandboxes_and_says_why() {
    let home = std::env::temp_dir().join(format!("mirrord-ls-home-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let output = Command::new(MIRRORD)
        .args(["ls", "--output", "json"])
        .env("HOME", &home)
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("MIRRORD_CONFIG_FILE")
        .current_dir(&home)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&home);
    let listing = json_of(&output);
    assert!(
        listing["targets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["kind"] == "sandbox")
    );
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("no Kubernetes cluster is configured"),
        "{stderr}"
    );
}

/// The restricted user of the real API server's RBAC may not `list` jobs.
#[test]
fn ls_explains_rbac_denials() {
    let cluster = Cluster::start(ClusterOptions::default());
    cluster.create_workloads(Backing::Idle, false);
    let restricted = || {
        let mut command = mirrord(&cluster);
        command.env("KUBECONFIG", &cluster.restricted_kubeconfig);
        command
    };
    let output = restricted().args(["ls", "--kind", "job"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with("error: not allowed to list jobs.batch in namespace `default`: "),
        "{stderr}"
    );
    assert!(
        stderr
            .contains("User \"mirrord-dev\" cannot list resource \"jobs\" in API group \"batch\""),
        "the API server's own words: {stderr}"
    );
    assert!(
        stderr.contains(
            "kubectl create role mirrord-user --verb=list --resource=jobs.batch -n default"
        ),
        "{stderr}"
    );
    // Without `--kind`, the other kinds are listed and the denial is a warning.
    let output = restricted().args(["ls"]).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("warning: jobs left out: not allowed to list jobs.batch"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("deployment/api"));
}

fn python_probe() -> &'static str {
    r#"
import os, socket, sys
print("ENV", os.environ.get("SANDBOX_GREETING"), flush=True)
print("FILE", open("/app/data/greeting.txt").read().strip(), flush=True)
print("DNS", socket.gethostbyname("db.sandbox.svc"), flush=True)
with socket.create_connection(("db.sandbox.svc", 7), timeout=5) as echo:
    echo.sendall(b"ping over the cluster\n")
    print("ECHO", echo.recv(100).decode().strip(), flush=True)
"#
}

#[test]
fn exec_runs_against_a_deployment_through_a_job_and_port_forward() {
    let sandbox = Sandbox::up("kube-exec");
    let cluster = cluster_on(&sandbox);
    let output = mirrord(&cluster)
        .args([
            "exec",
            "--target",
            "deployment/api",
            "--",
            "python3",
            "-c",
            python_probe(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}\ncluster:\n{}",
        cluster.logs()
    );
    let info = &sandbox.info;
    let greeting = info["env"]["SANDBOX_GREETING"].as_str().unwrap();
    assert!(stdout.contains(&format!("ENV {greeting}\n")), "{stdout}");
    let file = info["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/app/data/greeting.txt")
        .unwrap();
    assert!(
        stdout.contains(&format!(
            "FILE {}\n",
            file["contents"].as_str().unwrap().trim()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "DNS {}\n",
            info["dns_records"]["db.sandbox.svc"].as_str().unwrap()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("ECHO ping over the cluster\n"), "{stdout}");
    let pod = cluster.get(&[
        "pods",
        "-l",
        "app=api",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    for step in [
        "resolving deployment/api".to_owned(),
        format!("target: container api of pod default/{pod} on node {NODE_NAME}"),
        "creating the agent Job".to_owned(),
        "port-forward".to_owned(),
    ] {
        assert!(
            stderr.contains(&step),
            "no progress step {step:?}:\n{stderr}"
        );
    }
    // The agent found the target by the container ID the node wrote into the pod's status.
    let agent_log = cluster.container_logs_of("default", "mirrord-agent-");
    let container_id = cluster.get(&[
        "pod",
        &pod,
        "-o",
        "jsonpath={.status.containerStatuses[?(@.name==\"api\")].containerID}",
    ]);
    assert!(
        agent_log.contains(&format!(
            "found the target container's process container_id={}",
            container_id.trim_start_matches("containerd://")
        )),
        "{agent_log}"
    );
    // The token Secret is gone.
    assert_eq!(
        cluster.get(&["secrets", "-l", "mirrord.dev/session", "-o", "name"]),
        ""
    );
}

/// The agent as an ephemeral container of the target pod, accepted by the real API server.
#[test]
fn exec_with_an_ephemeral_agent() {
    let sandbox = Sandbox::up("kube-ephemeral");
    let cluster = cluster_on(&sandbox);
    let config = write_config(&cluster, r#"{"agent": {"ephemeral": true}}"#);
    let output = mirrord(&cluster)
        .args([
            "exec",
            "--config-file",
            &config,
            "--target",
            "deployment/api",
            "--",
            "python3",
            "-c",
            "print('FILE', open('/app/data/greeting.txt').read().strip())",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}\ncluster:\n{}",
        String::from_utf8_lossy(&output.stderr),
        cluster.logs()
    );
    assert!(stdout.starts_with("FILE "), "{stdout}");
    let ephemeral = cluster.get(&[
        "pods",
        "-l",
        "app=api",
        "-o",
        "jsonpath={.items[0].spec.ephemeralContainers[0].name}",
    ]);
    assert!(ephemeral.starts_with("mirrord-agent-"), "{ephemeral}");
}

/// `mirrord exec --target deployment/api --steal` with a real python `http.server`: the agent Job,
/// the intproxy's port-forward through the real API server and kwok, and the layer's `listen` hook
/// together steal HTTP sent to the pod.
#[test]
fn steals_http_through_the_port_forward() {
    let sandbox = Sandbox::up("kube-steal");
    let cluster = cluster_on(&sandbox);
    let server = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e/server.py");
    let mut command = mirrord(&cluster);
    command
        .args([
            "exec",
            "--target",
            "deployment/api",
            "--steal",
            "--",
            "python3",
        ])
        .arg(&server)
        .arg("80")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = support::GroupLeader(command.spawn().unwrap());
    let (lines_tx, lines) = std::sync::mpsc::channel();
    let stdout = child.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let next_line = |prefix: &str| loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no {prefix} line; cluster:\n{}", cluster.logs()));
        if let Some(rest) = line.strip_prefix(prefix) {
            return rest.to_owned();
        }
    };
    next_line("LISTENING ");
    let body = support::get(sandbox.address(), "/stolen");
    assert!(body.starts_with("local app: "), "{body}");
    let request: serde_json::Value = serde_json::from_str(&next_line("REQUEST ")).unwrap();
    assert_eq!(request["path"], "/stolen");
    assert_eq!(request["local"][1], 80, "the pod's port");
}

#[test]
fn exec_fails_fast_when_the_agent_image_cannot_be_pulled() {
    let cluster = Cluster::start(ClusterOptions::default());
    cluster.create_workloads(Backing::Idle, false);
    let config = write_config(
        &cluster,
        r#"{"agent": {"image": "registry.example/mirrord-agent:missing"}}"#,
    );
    // The failure is reported within 5 s: the harness gives it no longer.
    let child = mirrord(&cluster)
        .args([
            "exec",
            "--config-file",
            &config,
            "--target",
            "deployment/api",
            "--",
            "true",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = wait_at_most(child, Duration::from_secs(5), "the image pull failure");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("failed: ErrImagePull: rpc error: code = NotFound desc = failed to pull and unpack image \"registry.example/mirrord-agent:missing\"")
            || stderr.contains("failed: ImagePullBackOff"),
        "{stderr}"
    );
    assert!(stderr.contains("help: check `agent.image`"), "{stderr}");
    // The Job and its Secret were removed with it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !leftovers(&cluster).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(leftovers(&cluster), "");
}

#[test]
fn exec_lists_close_matches_for_a_wrong_target() {
    let cluster = Cluster::start(ClusterOptions::default());
    cluster.create_workloads(Backing::Idle, false);
    let output = mirrord(&cluster)
        .args(["exec", "--target", "deployment/apii", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "error: deployment `apii` not found in namespace `default`; did you mean api?"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("help: run `mirrord ls --namespace default`"),
        "{stderr}"
    );
}

/// A session whose user process reads a remote file once before and once after `break_it`
/// breaks the session; returns the second read's line (`ERRNO n seconds` or `STILL-READABLE`),
/// which must come within 2 s of asking (the harness waits no longer).
fn read_after(cluster: &mut Cluster, break_it: impl FnOnce(&mut Cluster)) -> String {
    let log_dir = cluster.dir().join("intproxy-logs/");
    std::fs::create_dir_all(&log_dir).unwrap();
    let config = write_config(
        cluster,
        &format!(
            r#"{{"agent": {{"ttl": 1}}, "internal_proxy": {{"log_destination": "{}"}}}}"#,
            log_dir.display()
        ),
    );
    let script = r#"
import sys, time
print("READY", open("/app/data/greeting.txt").read().strip(), flush=True)
sys.stdin.readline()
start = time.time()
try:
    open("/app/config.yaml").read()
    print("STILL-READABLE", flush=True)
except OSError as error:
    print("ERRNO", error.errno, round(time.time() - start, 2), flush=True)
"#;
    let mut child = mirrord(cluster)
        .args([
            "exec",
            "--config-file",
            &config,
            "--target",
            "deployment/api",
            "--",
            "python3",
            "-c",
            script,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.starts_with("READY "), "{line:?}\n{}", cluster.logs());
    break_it(cluster);
    std::thread::sleep(Duration::from_millis(500));
    let (line_tx, line_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        let _ = line_tx.send(line);
    });
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let line = line_rx
        .recv_timeout(Duration::from_secs(2))
        .unwrap_or_else(|_| panic!("the user process got no answer within 2 s (a hang)"));
    let _ = child.wait();
    let intproxy_log: String = std::fs::read_dir(&log_dir)
        .unwrap()
        .flatten()
        .map(|entry| std::fs::read_to_string(entry.path()).unwrap_or_default())
        .collect();
    assert!(
        intproxy_log.contains("agent connection lost"),
        "the user process printed {line:?}; intproxy log:\n{intproxy_log}\ncluster:\n{}",
        cluster.logs()
    );
    line
}

/// Waits for `child` at most `limit`, killing it and failing the test after that.
fn wait_at_most(mut child: std::process::Child, limit: Duration, what: &str) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} was not reported within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The API server (which carries the port-forward) dying mid-session: the user process's remote
/// calls fail with an errno instead of hanging.
#[test]
fn api_server_dying_mid_session_gives_errnos_not_a_hang() {
    let sandbox = Sandbox::up("kube-dies");
    let mut cluster = cluster_on(&sandbox);
    let line = read_after(&mut cluster, Cluster::kill_api_server);
    assert!(line.starts_with("ERRNO "), "{line:?}");
}

/// `kubectl delete pod` of the agent mid-session: errnos, not a hang; and once `agent.ttl` has
/// passed, nothing of the session is left in the namespace.
#[test]
fn agent_pod_deleted_mid_session_gives_errnos_and_leaves_nothing() {
    let sandbox = Sandbox::up("kube-agent-gone");
    let mut cluster = cluster_on(&sandbox);
    let line = read_after(&mut cluster, |cluster| {
        let deleted = cluster
            .kubectl()
            .args(["delete", "pod", "-l", "mirrord.dev/agent", "--wait=false"])
            .output()
            .unwrap();
        assert!(
            deleted.status.success(),
            "{}",
            String::from_utf8_lossy(&deleted.stderr)
        );
    });
    assert!(line.starts_with("ERRNO "), "{line:?}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !leftovers(&cluster).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(leftovers(&cluster), "", "{}", cluster.logs());
}
