//! `mirrord ls` and `mirrord exec` against Kubernetes targets, served by the fixture API server
//! (`tests/kube-fixture`) whose pod `api-7f9c5d-x2k4p` is backed by a sandbox pod, and checked
//! against a real client, kubectl. Needs root (sandboxes), python3 and kubectl (Debian's
//! `kubernetes-client`).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use mirrord_kube_fixture::{Fixture, FixtureOptions};
use support::{MIRRORD, Sandbox};

const BACKED_POD: &str = "default/api-7f9c5d-x2k4p/api";

fn kubectl() -> Command {
    let found = Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "kubectl is needed to check the fixture (apt-get install kubernetes-client)"
    );
    Command::new("kubectl")
}

fn mirrord(fixture: &Fixture) -> Command {
    let mut command = Command::new(MIRRORD);
    command
        .env("KUBECONFIG", &fixture.kubeconfig)
        .env_remove("MIRRORD_CONFIG_FILE")
        .current_dir(fixture.dir());
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

#[test]
fn ls_json_agrees_with_kubectl() {
    let fixture = Fixture::start(FixtureOptions::default());
    let listing = json_of(
        &mirrord(&fixture)
            .args(["ls", "--output", "json"])
            .output()
            .unwrap(),
    );
    assert_eq!(listing["currentNamespace"], "default");
    assert_eq!(
        listing["namespaces"],
        serde_json::json!(["default", "staging"])
    );
    let targets = listing["targets"].as_array().unwrap();
    for kind in [
        "pod",
        "deployment",
        "statefulset",
        "replicaset",
        "job",
        "cronjob",
        "rollout",
    ] {
        assert!(
            targets.iter().any(|t| t["kind"] == kind),
            "no {kind} listed: {listing:#}"
        );
    }
    let available = |path: &str| {
        targets
            .iter()
            .find(|t| t["path"] == path)
            .unwrap_or_else(|| panic!("{path} not listed"))["available"]
            .as_bool()
            .unwrap()
    };

    // The same cluster through kubectl, over HTTPS with the kubeconfig and over plain HTTP.
    for server in [None, Some(fixture.http_url.clone())] {
        let mut command = kubectl();
        command.env("KUBECONFIG", &fixture.kubeconfig).args([
            "get",
            "pods,deployments",
            "-o",
            "json",
        ]);
        if let Some(server) = &server {
            command.args(["--server", server]);
        }
        let from_kubectl = json_of(&command.output().unwrap());
        assert_eq!(from_kubectl["kind"], "List");
        let items = from_kubectl["items"].as_array().unwrap();
        let mut pods = 0;
        for item in items {
            let name = item["metadata"]["name"].as_str().unwrap();
            match item["kind"].as_str().unwrap() {
                "Pod" if name.starts_with("mirrord-agent") => {}
                "Pod" => {
                    pods += 1;
                    let ready = item["status"]["conditions"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True");
                    assert_eq!(available(&format!("pod/{name}")), ready, "pod {name}");
                }
                "Deployment" => {
                    let ready = item["status"]["availableReplicas"].as_u64().unwrap_or(0) > 0;
                    assert_eq!(
                        available(&format!("deployment/{name}")),
                        ready,
                        "deployment {name}"
                    );
                }
                other => panic!("unexpected {other}"),
            }
        }
        let listed_pods = targets
            .iter()
            .filter(|t| t["kind"] == "pod" && !t["path"].as_str().unwrap().contains("/container/"))
            .count();
        assert_eq!(listed_pods, pods);
    }
    assert!(
        !available("pod/api-7f9c5d-b8n2q"),
        "the pod that is not ready"
    );

    // kubectl's own printing (server-side tables), get by name, pagination and selectors.
    let table = kubectl()
        .env("KUBECONFIG", &fixture.kubeconfig)
        .args(["get", "pods"])
        .output()
        .unwrap();
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(table.starts_with("NAME "), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("api-7f9c5d-b8n2q") && l.contains("0/2")),
        "{table}"
    );
    let deployment = json_of(
        &kubectl()
            .env("KUBECONFIG", &fixture.kubeconfig)
            .args(["get", "deployment", "api", "-o", "json"])
            .output()
            .unwrap(),
    );
    assert_eq!(deployment["spec"]["selector"]["matchLabels"]["app"], "api");
    let paged = kubectl()
        .env("KUBECONFIG", &fixture.kubeconfig)
        .args([
            "get",
            "pods",
            "--chunk-size=2",
            "-l",
            "app=api",
            "-o",
            "name",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(paged.stdout).unwrap(),
        "pod/api-7f9c5d-b8n2q\npod/api-7f9c5d-x2k4p\n"
    );
    let missing = kubectl()
        .env("KUBECONFIG", &fixture.kubeconfig)
        .args(["get", "pod", "nope"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr).trim(),
        "Error from server (NotFound): pods \"nope\" not found"
    );
}

#[test]
fn kubectl_watches_pods_and_deployments() {
    let fixture = Fixture::start(FixtureOptions::default());
    let mut watch = kubectl()
        .env("KUBECONFIG", &fixture.kubeconfig)
        .args([
            "get",
            "pods",
            "--watch",
            "--output-watch-events",
            "-o",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (events_tx, events_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // kubectl prints one pretty-printed JSON object per event.
        let mut text = String::new();
        let mut depth = 0i32;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            depth += line.matches('{').count() as i32 - line.matches('}').count() as i32;
            text.push_str(&line);
            if depth == 0 && !text.trim().is_empty() {
                let event: serde_json::Value = serde_json::from_str(&text).unwrap();
                let _ = events_tx.send((
                    event["type"].as_str().unwrap_or("").to_owned(),
                    event["object"]["metadata"]["name"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                ));
                text.clear();
            }
        }
    });
    let wait_for = |kind: &str, prefix: &str| {
        let deadline = Instant::now() + Duration::from_secs(15);
        while let Ok((event, name)) =
            events_rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if event == kind && name.starts_with(prefix) {
                return;
            }
        }
        panic!("kubectl's watch showed no {kind} for {prefix}");
    };
    wait_for("ADDED", "api-7f9c5d-x2k4p");
    // A Job created by kubectl becomes a pod (whose image cannot be pulled here), seen live.
    let job = r#"{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "hello"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "hello", "image": "registry.example/hello:1"}]}}}}"#;
    let mut create = kubectl()
        .env("KUBECONFIG", &fixture.kubeconfig)
        .args(["create", "--validate=false", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    create
        .stdin
        .take()
        .unwrap()
        .write_all(job.as_bytes())
        .unwrap();
    let created = create.wait_with_output().unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    wait_for("ADDED", "hello-");
    wait_for("MODIFIED", "hello-");
    let _ = watch.kill();
    let _ = watch.wait();

    let deployments = kubectl()
        .env("KUBECONFIG", &fixture.kubeconfig)
        .args([
            "get",
            "deployments",
            "--watch",
            "-o",
            "name",
            "--request-timeout=3s",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let mut deployments = deployments;
    let _ = deployments.kill();
    let mut names = String::new();
    deployments
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut names)
        .unwrap();
    assert_eq!(names, "deployment.apps/api\ndeployment.apps/legacy\n");
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

#[test]
fn ls_explains_rbac_denials() {
    let fixture = Fixture::start(FixtureOptions {
        forbid: vec!["list:jobs.batch".to_owned()],
        ..FixtureOptions::default()
    });
    let output = mirrord(&fixture)
        .args(["ls", "--kind", "job"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with("error: not allowed to list jobs.batch in namespace `default`: "),
        "{stderr}"
    );
    assert!(
        stderr.contains("help: your Kubernetes user needs permission to list jobs.batch"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "kubectl create role mirrord-user --verb=list --resource=jobs.batch -n default"
        ),
        "{stderr}"
    );
    // Without `--kind`, the other kinds are listed and the denial is a warning.
    let output = mirrord(&fixture).args(["ls"]).output().unwrap();
    assert!(output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("warning: jobs left out: not allowed to list jobs.batch")
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("deployment/api"));
}

fn python_probe() -> &'static str {
    r#"
import os, socket, sys
print("ENV", os.environ.get("SANDBOX_GREETING"), flush=True)
print("FILE", open("/app/data/greeting.txt").read().strip(), flush=True)
print("DNS", socket.gethostbyname("db.sandbox.svc"), flush=True)
"#
}

#[test]
fn exec_runs_against_a_deployment_through_a_job_and_port_forward() {
    let sandbox = Sandbox::up("kube-exec");
    let fixture = Fixture::start(FixtureOptions {
        pods: vec![format!("{BACKED_POD}={}", sandbox.target_pid())],
        ..FixtureOptions::default()
    });
    let started = Instant::now();
    let output = mirrord(&fixture)
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
        "stdout:\n{stdout}\nstderr:\n{stderr}\nfixture:\n{}",
        fixture.log()
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
    for step in [
        "resolving deployment/api",
        "target: container api of pod default/api-7f9c5d-x2k4p on node node-1",
        "creating the agent Job",
        "port-forward",
    ] {
        assert!(
            stderr.contains(step),
            "no progress step {step:?}:\n{stderr}"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    // The agent found the target by container ID, and the token Secret is gone.
    let logs = kubectl()
        .env("KUBECONFIG", &fixture.kubeconfig)
        .args(["logs", "-l", "mirrord.dev/session"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&logs.stdout)
            .contains("found the target container's process container_id="),
        "{}",
        String::from_utf8_lossy(&logs.stdout)
    );
    let secrets = kubectl()
        .env("KUBECONFIG", &fixture.kubeconfig)
        .args(["get", "secrets", "-o", "name"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&secrets.stdout), "");
}

/// `mirrord exec --target deployment/api --steal` with a real python `http.server`: the agent Job,
/// the intproxy's port-forward and the layer's `listen` hook together steal HTTP sent to the pod.
#[test]
fn steals_http_through_the_port_forward() {
    let sandbox = Sandbox::up("kube-steal");
    let fixture = Fixture::start(FixtureOptions {
        pods: vec![format!("{BACKED_POD}={}", sandbox.target_pid())],
        ..FixtureOptions::default()
    });
    let server = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e/server.py");
    let mut command = mirrord(&fixture);
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
            .unwrap_or_else(|_| panic!("no {prefix} line; fixture:\n{}", fixture.log()));
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
    let fixture = Fixture::start(FixtureOptions::default());
    let config = fixture.dir().join("mirrord.json");
    std::fs::write(
        &config,
        r#"{"agent": {"image": "registry.example/mirrord-agent:missing"}}"#,
    )
    .unwrap();
    let started = Instant::now();
    let output = mirrord(&fixture)
        .args([
            "exec",
            "--config-file",
            config.to_str().unwrap(),
            "--target",
            "deployment/api",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("failed: ErrImagePull: rpc error: code = NotFound desc = failed to pull and unpack image \"registry.example/mirrord-agent:missing\"") || stderr.contains("failed: ImagePullBackOff"), "{stderr}");
    assert!(stderr.contains("help: check `agent.image`"), "{stderr}");
}

#[test]
fn exec_lists_close_matches_for_a_wrong_target() {
    let fixture = Fixture::start(FixtureOptions::default());
    let output = mirrord(&fixture)
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

/// Regression guard for the API server (which carries the port-forward) dying mid-session: the
/// user process's remote calls fail with an errno instead of hanging, and the intproxy says why.
#[test]
fn api_server_dying_mid_session_gives_errnos_not_a_hang() {
    let sandbox = Sandbox::up("kube-dies");
    let mut fixture = Fixture::start(FixtureOptions {
        pods: vec![format!("{BACKED_POD}={}", sandbox.target_pid())],
        ..FixtureOptions::default()
    });
    let container_id = kubectl()
        .env("KUBECONFIG", &fixture.kubeconfig)
        .args([
            "get",
            "pod",
            "api-7f9c5d-x2k4p",
            "-o",
            "jsonpath={.status.containerStatuses[0].containerID}",
        ])
        .output()
        .unwrap();
    let container_id = String::from_utf8(container_id.stdout)
        .unwrap()
        .trim_start_matches("containerd://")
        .to_owned();
    assert_eq!(container_id.len(), 64);
    let config = fixture.dir().join("mirrord.json");
    let log_dir = fixture.dir().join("logs/");
    std::fs::write(
        &config,
        format!(
            r#"{{"internal_proxy": {{"log_destination": "{}"}}}}"#,
            log_dir.display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(&log_dir).unwrap();
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
    let mut child = mirrord(&fixture)
        .args([
            "exec",
            "--config-file",
            config.to_str().unwrap(),
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
    assert!(line.starts_with("READY "), "{line:?}");
    fixture.kill();
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    line.clear();
    stdout.read_line(&mut line).unwrap();
    let _ = child.wait();
    assert!(line.starts_with("ERRNO "), "{line:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    let intproxy_log: String = std::fs::read_dir(&log_dir)
        .unwrap()
        .flatten()
        .map(|entry| std::fs::read_to_string(entry.path()).unwrap_or_default())
        .collect();
    assert!(
        intproxy_log.contains("agent connection lost"),
        "{intproxy_log}"
    );
    // Nothing of the session is left running: the agent died with the fixture's kubelet.
    let leftover = Command::new("pgrep")
        .args(["-f", &format!("--container-id {container_id}")])
        .output()
        .unwrap();
    assert!(
        leftover.stdout.is_empty(),
        "agent processes left: {}",
        String::from_utf8_lossy(&leftover.stdout)
    );
}
