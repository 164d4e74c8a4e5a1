//! The agent's Kubernetes objects, checked against golden JSON in `tests/golden/`. Run with
//! `UPDATE_EXPECT=1` to rewrite the files after a deliberate change, then review the diff.

use std::collections::BTreeMap;
use std::path::PathBuf;

use mirrord_config::ResolvedConfig;
use mirrord_config::file::{LinuxCapability, TaintEffect, Toleration, TolerationOperator};
use mirrord_kube::{
    AgentSpec, CopySession, ResolvedTarget, ScaledDown, undo_role, undo_service_account,
};

fn target() -> ResolvedTarget {
    ResolvedTarget {
        path: "deployment/api".to_owned(),
        namespace: "shop".to_owned(),
        pod_name: "api-7f9c5d-x2k4p".to_owned(),
        pod_uid: "9b2e6a51-4c1d-4f7e-8a3b-2d5c6e7f8091".to_owned(),
        node_name: Some("node-1".to_owned()),
        container_name: "api".to_owned(),
        container_id: Some(
            "containerd://4f1c2a9e8b7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170605f4e3"
                .to_owned(),
        ),
    }
}

/// The defaults, with the image pinned so a version bump does not change the golden files.
fn default_agent() -> mirrord_config::resolved::AgentConfig {
    let mut agent = ResolvedConfig::default().agent;
    agent.image = "ghcr.io/mirrord-rs/mirrord-agent:1.2.3".to_owned();
    agent
}

fn check(name: &str, actual: &impl serde::Serialize) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    let actual = serde_json::to_string_pretty(actual).unwrap() + "\n";
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_EXPECT=1 to create it)",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs (run with UPDATE_EXPECT=1 to accept):\n{actual}",
        path.display()
    );
}

#[test]
fn default_job() {
    let agent = default_agent();
    let target = target();
    let spec = AgentSpec {
        agent: &agent,
        target: &target,
        session_id: "4242-0a1b2c3d",
        port: 44128,
        undo: None,
    };
    check("job_default.json", &spec.job());
    check("secret.json", &spec.secret("shop", "c0ffee"));
}

#[test]
fn customised_job() {
    let mut agent = default_agent();
    agent.namespace = Some("mirrord".to_owned());
    agent.privileged = true;
    agent.disabled_capabilities = vec![LinuxCapability::SysAdmin, LinuxCapability::NetRaw];
    agent.tolerations = vec![Toleration {
        key: Some("dedicated".to_owned()),
        operator: Some(TolerationOperator::Equal),
        value: Some("gpu".to_owned()),
        effect: Some(TaintEffect::NoSchedule),
        toleration_seconds: None,
    }];
    agent.resource_requests = BTreeMap::from([("cpu".to_owned(), "10m".to_owned())]);
    agent.resource_limits = BTreeMap::new();
    agent.node_selector = BTreeMap::from([("kubernetes.io/os".to_owned(), "linux".to_owned())]);
    agent.labels = BTreeMap::from([("team".to_owned(), "payments".to_owned())]);
    agent.annotations = BTreeMap::from([("owner".to_owned(), "payments@example.com".to_owned())]);
    agent.image_pull_secrets = vec!["registry-credentials".to_owned()];
    agent.service_account = Some("mirrord-agent".to_owned());
    agent.ttl = 30;
    agent.communication_timeout = 60;
    agent.log_level = "debug".to_owned();
    let target = target();
    let spec = AgentSpec {
        agent: &agent,
        target: &target,
        session_id: "4242-0a1b2c3d",
        port: 44128,
        undo: None,
    };
    check("job_customised.json", &spec.job());
}

#[test]
fn ephemeral_container() {
    let mut agent = default_agent();
    agent.ephemeral = true;
    agent.disabled_capabilities = vec![LinuxCapability::NetAdmin];
    let target = target();
    let spec = AgentSpec {
        agent: &agent,
        target: &target,
        session_id: "4242-0a1b2c3d",
        port: 44128,
        undo: None,
    };
    check("ephemeral_container.json", &spec.ephemeral_container());
}

/// The token reaches the agent only through the Secret: no spec carries it in clear text.
#[test]
fn token_never_in_a_pod_spec() {
    let agent = default_agent();
    let target = target();
    let spec = AgentSpec {
        agent: &agent,
        target: &target,
        session_id: "4242-0a1b2c3d",
        port: 44128,
        undo: None,
    };
    let token = "5ecre7-5e55i0n-70ken";
    let job = serde_json::to_string(&spec.job()).unwrap();
    let container = serde_json::to_string(&spec.ephemeral_container()).unwrap();
    assert!(!job.contains(token) && !container.contains(token));
    assert!(
        job.contains(
            r#""secretKeyRef":{"key":"token","name":"mirrord-agent-4242-0a1b2c3d-token"}"#
        )
    );
    let secret = spec.secret("shop", token);
    assert_eq!(secret.data.unwrap()["token"].0, token.as_bytes());
}

/// Targetless: an ordinary pod of the namespace (its own network, where the cluster's DNS and
/// services are), with no host PID namespace, node pin, capabilities or container ID.
#[test]
fn targetless_job() {
    let agent = default_agent();
    let target = ResolvedTarget::targetless("shop");
    assert!(target.is_targetless());
    let spec = AgentSpec {
        agent: &agent,
        target: &target,
        session_id: "4242-0a1b2c3d",
        port: 44128,
        undo: None,
    };
    check("job_targetless.json", &spec.job());
}

/// The agent that undoes a copy itself: it runs as the session's ServiceAccount (a token mounted,
/// unlike every other agent), is told what to undo, and its Role allows exactly that.
#[test]
fn job_undoing_a_copy_and_its_role() {
    let agent = default_agent();
    let target = target();
    let copy = CopySession {
        namespace: "shop".to_owned(),
        copy_pod: "mirrord-copy-4242-0a1b2c3d".to_owned(),
        scaled_down: Some(ScaledDown {
            kind: "deployment".to_owned(),
            name: "api".to_owned(),
            replicas: 3,
        }),
        session_id: "4242-0a1b2c3d".to_owned(),
    };
    let spec = AgentSpec {
        agent: &agent,
        target: &target,
        session_id: "4242-0a1b2c3d",
        port: 44128,
        undo: Some(&copy),
    };
    let job = serde_json::to_value(spec.job()).unwrap();
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "mirrord-agent-4242-0a1b2c3d");
    assert!(pod.get("automountServiceAccountToken").is_none(), "{pod}");
    let args: Vec<&str> = pod["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.ends_with(&[
            "--copy-pod",
            "shop/mirrord-copy-4242-0a1b2c3d",
            "--session-id",
            "4242-0a1b2c3d",
            "--scaled-down",
            "deployment/api",
        ]),
        "{args:?}"
    );
    assert_eq!(
        serde_json::to_value(undo_role(&copy)).unwrap()["rules"],
        serde_json::json!([
            {"apiGroups": [""], "resources": ["pods"],
             "resourceNames": ["mirrord-copy-4242-0a1b2c3d"], "verbs": ["delete"]},
            {"apiGroups": ["apps"], "resources": ["deployments"],
             "resourceNames": ["api"], "verbs": ["get", "patch"]}])
    );
    // A service account of the config's is the one bound (and run as).
    let mut agent = default_agent();
    agent.service_account = Some("team-agent".to_owned());
    assert_eq!(undo_service_account(&agent, &copy.session_id), "team-agent");
}
