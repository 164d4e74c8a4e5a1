//! `feature.network.outgoing.unix_streams` on a Kubernetes target, against a real control plane
//! (`tests/cluster`) whose `api` Deployment's pod is backed by a sandbox pod: a unix socket served
//! inside the pod (its own `/run`) is reached by curl, python and a Go program (the system-call
//! path) under `mirrord exec --target deployment/api` when its path matches, through the agent in
//! the cluster and a unix relay of the intproxy's; a path that does not match stays on this
//! machine, where nothing is; a path that matches but does not exist in the pod fails the connect
//! with `ENOENT` instead of hanging. One cluster for all of it (each start costs seconds).
//!
//! Needs root (sandboxes), python3, curl, Go, nsenter and the control plane built by
//! `tests/cluster/build.sh`.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mirrord_test_cluster::{Backing, Cluster, ClusterOptions};
use support::e2e::{Run, build_go_probe, repo_root, run_bounded, spawn_until_ready};
use support::{MIRRORD, Sandbox};

const LIMIT: Duration = Duration::from_secs(120);
const POD_TAG: &str = "from-the-pod";

/// `mirrord exec --target deployment/api [--config-file CONFIG] -- PROGRAM…`, bounded.
fn exec(cluster: &Cluster, config: Option<&Path>, program: &[&str]) -> Run {
    let mut command = Command::new(MIRRORD);
    command
        .args(["exec", "--target", "deployment/api"])
        .env("KUBECONFIG", &cluster.kubeconfig)
        .env_remove("MIRRORD_CONFIG_FILE")
        .current_dir(cluster.dir());
    if let Some(config) = config {
        command.arg("--config-file").arg(config);
    }
    command.arg("--").args(program);
    run_bounded(command, LIMIT)
}

/// curl and python clients of the unix socket at `path`: each prints the body, or `ERR …`
/// (python: the errno's name).
fn clients(path: &str) -> Vec<(&'static str, Vec<String>)> {
    let python = "import errno, socket, sys\n\
                  try:\n    s = socket.socket(socket.AF_UNIX)\n    s.settimeout(10)\n    s.connect(sys.argv[1])\n    \
                  s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\n    data = b''\n    \
                  while chunk := s.recv(4096):\n        data += chunk\n    \
                  print(data.split(b'\\r\\n\\r\\n', 1)[-1].decode())\n\
                  except OSError as error:\n    print('ERR', errno.errorcode.get(error.errno, error))";
    vec![
        (
            "curl",
            vec![
                "curl".into(),
                "-sS".into(),
                "--max-time".into(),
                "10".into(),
                "--unix-socket".into(),
                path.into(),
                "http://app/".into(),
            ],
        ),
        (
            "python",
            vec!["python3".into(), "-c".into(), python.into(), path.into()],
        ),
    ]
}

#[test]
fn unix_streams_reach_a_socket_inside_a_cluster_target_only_when_they_match() {
    let id = std::process::id();
    let sandbox = Sandbox::up(&format!("kube-unix-{:03}", id % 1000));
    let cluster = Cluster::start(ClusterOptions::default());
    cluster.create_workloads(Backing::Sandbox(&sandbox.name), false);

    let served = format!("/run/mirrord-kube-app-{id}.sock");
    let missing = format!("/run/mirrord-kube-missing-{id}.sock");
    let script = std::fs::read_to_string(repo_root().join("tests/e2e/tagged_server.py")).unwrap();
    let mut server = Command::new("nsenter");
    server
        .args([
            "--target",
            &sandbox.target_pid().to_string(),
            "--net",
            "--mount",
        ])
        .args(["--", "python3", "-c", &script, "unix", &served, POD_TAG]);
    let _server = spawn_until_ready(server, "ready").0;
    assert!(!Path::new(&served).exists(), "this machine has {served}");

    let matching = cluster.dir().join("unix-matching.json");
    std::fs::write(
        &matching,
        format!(
            r#"{{"feature": {{"network": {{"outgoing": {{"unix_streams": "^/run/mirrord-kube-(app|missing)-{id}\\.sock$"}}}}}}}}"#
        ),
    )
    .unwrap();
    let other = cluster.dir().join("unix-other.json");
    std::fs::write(
        &other,
        r#"{"feature": {"network": {"outgoing": {"unix_streams": ["^/var/run/docker\\.sock$"]}}}}"#,
    )
    .unwrap();

    for (client, program) in clients(&served) {
        let program: Vec<&str> = program.iter().map(String::as_str).collect();
        let reached = exec(&cluster, Some(&matching), &program);
        assert_eq!(
            reached.stdout.trim(),
            POD_TAG,
            "{client} reaches the pod's socket when unix_streams matches: {}\ncluster:\n{}",
            reached.describe(),
            cluster.logs()
        );
        let local = exec(&cluster, Some(&other), &program);
        assert_ne!(
            local.stdout.trim(),
            POD_TAG,
            "{client} stays on this machine when unix_streams does not match: {}",
            local.describe()
        );
        assert!(
            local.stdout.contains("ERR") || !local.status.success(),
            "{client} fails: nothing is at {served} here: {}",
            local.describe()
        );
    }
    // Matched but absent in the pod: python sees ENOENT, at once.
    let (_, program) = clients(&missing).remove(1);
    let program: Vec<&str> = program.iter().map(String::as_str).collect();
    let absent = exec(&cluster, Some(&matching), &program);
    assert_eq!(absent.stdout.trim(), "ERR ENOENT", "{}", absent.describe());

    // A Go program (the system-call path), built statically.
    let go = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kube-unix-go-probe");
    build_go_probe(&go, true);
    let go = go.to_str().unwrap();
    let run = exec(
        &cluster,
        Some(&matching),
        &[go, &format!("unix:{served}"), &format!("unix:{missing}")],
    );
    run.expect(&format!("unix {served}"), POD_TAG);
    run.expect(&format!("unix {missing}"), "ERR ENOENT");
}
