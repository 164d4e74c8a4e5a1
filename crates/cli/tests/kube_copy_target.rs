//! `feature.copy_target` on a real Kubernetes control plane (`tests/cluster`): the session runs
//! against a copy of `deployment/api`'s pod (the node runner backs the copy with a sandbox pod of
//! its own, so the copy and the original share no process or address), stealing takes nothing
//! from the original, and with `scale_down` the deployment is at zero replicas for the session;
//! both are back as they were after the session ends, also after `kill -9` of the user's process
//! (the session's internal proxy undoes it). Needs root (sandboxes), python3, kubectl and the
//! control plane built by `tests/cluster/build.sh`.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mirrord_test_cluster::{Backing, Cluster, ClusterOptions};
use support::{MIRRORD, Sandbox};

fn mirrord(cluster: &Cluster, config: &str) -> Command {
    let path = cluster.dir().join("mirrord.json");
    std::fs::write(&path, config).unwrap();
    let mut command = Command::new(MIRRORD);
    command
        .env("KUBECONFIG", &cluster.kubeconfig)
        .env_remove("MIRRORD_CONFIG_FILE")
        .current_dir(cluster.dir())
        .arg("exec")
        .arg("--config-file")
        .arg(&path);
    command
}

/// `kubectl get ARGS`, trimmed (empty when kubectl fails).
fn get(cluster: &Cluster, args: &[&str]) -> String {
    let output = cluster.kubectl().arg("get").args(args).output().unwrap();
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Waits until `check` holds, at most `limit`; panics saying `what` with the cluster's logs.
fn wait_until(cluster: &Cluster, what: &str, limit: Duration, check: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "not within {limit:?}: {what}\ncluster:\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The copy pods of the session, by name.
fn copies(cluster: &Cluster) -> String {
    get(
        cluster,
        &[
            "pods",
            "-l",
            "mirrord.dev/copy-of",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ],
    )
}

/// The `api` pods: `name uid` of each.
fn api_pods(cluster: &Cluster) -> String {
    get(
        cluster,
        &[
            "pods",
            "-l",
            "app=api",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.metadata.uid}{\"\\n\"}{end}",
        ],
    )
}

/// A session as the restricted user against `deployment/api` with `config` (a copy_target with
/// scale_down), its program — python3, which prints the pod's second config line after `READY ` —
/// started; `ready` is that line. Returns mirrord (the user's process) and its stderr so far.
fn scaled_down_session(
    cluster: &Cluster,
    config: &str,
    ready: &str,
) -> (std::process::Child, String) {
    let stderr_path = cluster.dir().join("mirrord.stderr");
    let mut child = mirrord(cluster, config)
        .env("KUBECONFIG", &cluster.restricted_kubeconfig)
        .args([
            "--target",
            "deployment/api",
            "--",
            "python3",
            "-c",
            "import time; print('READY', open('/app/config.yaml').read().splitlines()[1], flush=True); time.sleep(600)",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let lines = Lines::of(&mut child);
    assert_eq!(lines.next("READY ", cluster), ready);
    (child, std::fs::read_to_string(&stderr_path).unwrap())
}

/// The deployment's desired replicas.
fn replicas(cluster: &Cluster) -> String {
    get(
        cluster,
        &["deployment", "api", "-o", "jsonpath={.spec.replicas}"],
    )
}

/// Whether the deployment is back at one available replica and no copy is left.
fn restored(cluster: &Cluster) -> bool {
    replicas(cluster) == "1"
        && get(
            cluster,
            &[
                "deployment",
                "api",
                "-o",
                "jsonpath={.status.availableReplicas}",
            ],
        ) == "1"
        && copies(cluster).is_empty()
}

/// Reads lines of a child's stdout on a thread; `next(prefix)` waits for the next line with it.
struct Lines(std::sync::mpsc::Receiver<String>);

impl Lines {
    fn of(child: &mut std::process::Child) -> Lines {
        let stdout = child.stdout.take().unwrap();
        let (line_tx, line_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = line_tx.send(line);
            }
        });
        Lines(line_rx)
    }

    fn next(&self, prefix: &str, cluster: &Cluster) -> String {
        loop {
            let line = self
                .0
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no {prefix} line; cluster:\n{}", cluster.logs()));
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.to_owned();
            }
        }
    }
}

#[test]
fn copy_target_runs_against_a_copy_and_leaves_the_original_alone() {
    let sandbox = Sandbox::up("kube-copy");
    let cluster = Cluster::start(ClusterOptions::default());
    cluster.create_workloads(Backing::Sandbox(&sandbox.name), false);
    let original = api_pods(&cluster);
    let original_name = original.split(' ').next().unwrap().to_owned();
    let config = r#"{"feature": {"copy_target": true}, "agent": {"ttl": 1}, "internal_proxy": {"idle_timeout": 1}}"#;

    // The process sees the copy's files and environment (the copy's own sandbox pod).
    let probe = "import os; print('FILE', open('/app/config.yaml').read().splitlines()[1]); print('ENV', os.environ.get('SANDBOX_GREETING'))";
    let output = mirrord(&cluster, config)
        .args(["--target", "deployment/api", "--", "python3", "-c", probe])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}\ncluster:\n{}",
        cluster.logs()
    );
    assert!(stdout.contains("FILE sandbox: kube-copy-2\n"), "{stdout}");
    assert!(
        stdout.contains("ENV hello from sandbox kube-copy-2\n"),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!(
            "copying pod default/{original_name} to default/mirrord-copy-"
        )),
        "{stderr}"
    );
    wait_until(
        &cluster,
        "the copy is deleted after the session",
        Duration::from_secs(60),
        || copies(&cluster).is_empty(),
    );

    // Stealing port 80 of the copy: the original pod keeps answering for itself.
    let server = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e/server.py");
    let mut command = mirrord(&cluster, config);
    command
        .args(["--target", "deployment/api", "--steal", "--", "python3"])
        .arg(&server)
        .arg("80")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = support::GroupLeader(command.spawn().unwrap());
    let lines = Lines::of(&mut child.0);
    lines.next("LISTENING ", &cluster);
    let copy = copies(&cluster);
    assert!(copy.starts_with("mirrord-copy-"), "{copy:?}");
    let spec = |pod: &str| {
        get(
            &cluster,
            &[
                "pod",
                pod,
                "-o",
                "jsonpath={.spec.containers}{.spec.volumes}",
            ],
        )
    };
    assert_eq!(
        spec(&copy),
        spec(&original_name),
        "the same containers, env and volumes"
    );
    assert_eq!(
        get(
            &cluster,
            &["pod", &copy, "-o", "jsonpath={.metadata.labels.app}"]
        ),
        "",
        "the copy has none of the labels the Service and the ReplicaSet select"
    );
    let copy_ip = get(&cluster, &["pod", &copy, "-o", "jsonpath={.status.podIP}"]);
    let stolen = support::get(format!("{copy_ip}:80").parse().unwrap(), "/to-the-copy");
    assert!(stolen.starts_with("local app: "), "{stolen}");
    let untouched = support::get(sandbox.address(), "/to-the-original");
    assert!(
        !untouched.starts_with("local app: "),
        "the original pod's traffic was stolen: {untouched}"
    );
    drop(child); // SIGKILL to the user's process group; the intproxy ends the session
    wait_until(
        &cluster,
        "the copy is deleted after the session",
        Duration::from_secs(60),
        || copies(&cluster).is_empty(),
    );
    assert_eq!(
        api_pods(&cluster),
        original,
        "the original pod is the same pod"
    );
}

#[test]
fn copy_target_scale_down_is_restored_after_kill_9() {
    let sandbox = Sandbox::up("kube-scale");
    let cluster = Cluster::start(ClusterOptions::default());
    cluster.create_workloads(Backing::Sandbox(&sandbox.name), false);
    // The restricted user without `create serviceaccounts`: the agent cannot be given what it
    // needs to undo the session itself, the session says so in one line and still works, and the
    // internal proxy undoes it.
    let patched = cluster
        .kubectl()
        .args(["patch", "role", "mirrord-dev", "--type=json", "-p"])
        .arg(r#"[{"op": "test", "path": "/rules/1/resources", "value": ["serviceaccounts"]}, {"op": "remove", "path": "/rules/1"}]"#)
        .output()
        .unwrap();
    assert!(patched.status.success(), "{patched:?}");
    let config = r#"{"feature": {"copy_target": {"scale_down": true}}, "agent": {"ttl": 1}, "internal_proxy": {"idle_timeout": 1}}"#;
    let (mut child, stderr) = scaled_down_session(&cluster, config, "sandbox: kube-scale-2");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("warning: "))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].starts_with("warning: the agent cannot undo the copy of the target itself (not allowed to create serviceaccounts in namespace `default`")
            && warnings[0].ends_with("the workload will be restored only by this session's internal proxy"),
        "{stderr}"
    );
    assert_eq!(replicas(&cluster), "0", "scaled down during the session");
    wait_until(
        &cluster,
        "the original pod is gone while scaled down",
        Duration::from_secs(60),
        || api_pods(&cluster).is_empty(),
    );
    assert!(copies(&cluster).starts_with("mirrord-copy-"));

    // `kill -9` of mirrord (which became the user's process).
    child.kill().unwrap();
    child.wait().unwrap();
    wait_until(
        &cluster,
        "the deployment is back at 1 replica, its pod ready, and the copy gone",
        Duration::from_secs(90),
        || restored(&cluster),
    );
    assert_eq!(
        get(
            &cluster,
            &[
                "deployment",
                "api",
                "-o",
                "jsonpath={.metadata.annotations.mirrord\\.dev/scaled-down-from}"
            ]
        ),
        "",
        "the note of the replicas to restore is gone"
    );
}

/// The processes whose environment has every one of `entries` (`NAME=VALUE`, or `NAME=` for any
/// value).
fn processes_with_env(entries: &[&str]) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
                entries.iter().all(|entry| {
                    environ.split(|b| *b == 0).any(|variable| {
                        if entry.ends_with('=') {
                            variable.starts_with(entry.as_bytes())
                        } else {
                            variable == entry.as_bytes()
                        }
                    })
                })
            })
        })
        .collect()
}

/// Every mirrord process of the session killed at once (`kill -9` of the user's process and of the
/// internal proxy): nothing on this machine is left to undo the session, and the agent does it —
/// the replicas are back, the annotations and the copy gone, within seconds of the agent noticing
/// its client left. Run as the restricted user, whose RBAC is what the README lists.
#[test]
fn copy_target_scale_down_is_undone_by_the_agent_when_every_mirrord_process_is_killed() {
    let sandbox = Sandbox::up("kube-undo");
    let cluster = Cluster::start(ClusterOptions::default());
    cluster.create_workloads(Backing::Sandbox(&sandbox.name), false);
    // A long idle timeout: the internal proxy must not be what undoes it.
    let config = r#"{"feature": {"copy_target": {"scale_down": true}}, "agent": {"ttl": 600}, "internal_proxy": {"idle_timeout": 600}}"#;
    let (mut child, stderr) = scaled_down_session(&cluster, config, "sandbox: kube-undo-2");
    assert!(
        !stderr.contains("cannot undo the copy"),
        "the restricted user may grant the agent what it needs: {stderr}"
    );
    assert_eq!(replicas(&cluster), "0", "scaled down during the session");
    let copy = copies(&cluster);
    assert!(copy.starts_with("mirrord-copy-"), "{copy:?}");

    // Every mirrord process of the session: the user's process (mirrord exec became it) and the
    // internal proxy (the one process holding this session's copy in its environment).
    let kubeconfig = format!("KUBECONFIG={}", cluster.restricted_kubeconfig.display());
    let intproxies = processes_with_env(&[&kubeconfig, "MIRRORD_COPY_SESSION="]);
    assert_eq!(intproxies.len(), 1, "{intproxies:?}");
    for pid in &intproxies {
        Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
    }
    child.kill().unwrap();
    child.wait().unwrap();

    wait_until(
        &cluster,
        "the agent restores the deployment to 1 replica and deletes the copy",
        Duration::from_secs(60),
        || restored(&cluster),
    );
    let annotations = get(
        &cluster,
        &[
            "deployment",
            "api",
            "-o",
            "jsonpath={.metadata.annotations}",
        ],
    );
    assert!(
        !annotations.contains("mirrord.dev/"),
        "no mirrord annotation is left: {annotations}"
    );
    let agent_log = cluster.container_logs_of("default", "mirrord-agent-");
    assert!(
        agent_log.contains("replicas restored") && agent_log.contains("copy of the target deleted"),
        "the agent did it:\n{agent_log}"
    );
}
