//! `mirrord/listTargets` and target completion list the cluster's targets, through the same code
//! as `mirrord ls`, against a real control plane (`tests/cluster`, workloads made by the real
//! controllers); local targets stay listed beside them, and an unreachable cluster hides nothing.

use mirrord_ide::protocol::ListTargetsParams;
use mirrord_ide::targets::Targets;
use mirrord_test_cluster::{Backing, Cluster, ClusterOptions};

fn cluster() -> Cluster {
    let cluster = Cluster::start(ClusterOptions::default());
    cluster.create_workloads(Backing::Idle, false);
    cluster
}

fn config_for(cluster: &Cluster, kubeconfig: &std::path::Path) -> String {
    let path = cluster.dir().join("mirrord.json");
    std::fs::write(
        &path,
        serde_json::json!({ "kubeconfig": kubeconfig }).to_string(),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn the_clusters_targets_are_listed_beside_the_local_ones() {
    let fixture = cluster();
    let config_path = config_for(&fixture, &fixture.kubeconfig);
    let targets = Targets::default();
    let all = targets
        .list(&ListTargetsParams {
            config_path: Some(config_path.clone()),
            ..ListTargetsParams::default()
        })
        .unwrap();
    let api = all
        .targets
        .iter()
        .find(|t| t.path == "deployment/api")
        .unwrap_or_else(|| panic!("{:#?}", all.targets));
    assert_eq!(api.kind, "deployment");
    assert_eq!(api.namespace.as_deref(), Some("default"));
    assert_eq!(all.current_namespace.as_deref(), Some("default"));
    assert!(
        all.namespaces.iter().any(|n| n == "default"),
        "{:?}",
        all.namespaces
    );
    assert!(all.targets.iter().any(|t| t.kind == "pod"));
    assert!(all.targets.iter().any(|t| t.path == "targetless"));
    // The picker: the cluster's kinds first, the local processes behind one entry.
    let groups = mirrord_ide::targets::groups(&all, &[], None);
    let titles: Vec<&str> = groups.iter().map(|g| g.title.as_str()).collect();
    assert_eq!(titles.first(), Some(&"Pods"), "{titles:?}");
    assert_eq!(titles.last(), Some(&"No target"), "{titles:?}");
    let processes = groups.iter().find(|g| g.id == "pid").unwrap();
    assert!(processes.targets.is_empty());
    assert_eq!(
        processes.more.as_ref().map(|more| more.label.as_str()),
        Some("Local processes…")
    );

    let deployments = targets
        .list(&ListTargetsParams {
            config_path: Some(config_path),
            kinds: Some(vec!["deployment".into()]),
            ..ListTargetsParams::default()
        })
        .unwrap();
    assert!(!deployments.targets.is_empty());
    assert!(deployments.targets.iter().all(|t| t.kind == "deployment"));
}

#[test]
fn an_unreachable_cluster_leaves_the_local_targets_listed() {
    let fixture = cluster();
    // A kubeconfig naming a port nothing listens on.
    let dead = fixture.dir().join("dead-kubeconfig");
    std::fs::write(
        &dead,
        "apiVersion: v1\nkind: Config\ncurrent-context: dead\n\
         clusters: [{name: dead, cluster: {server: 'http://127.0.0.1:9'}}]\n\
         users: [{name: dead, user: {}}]\n\
         contexts: [{name: dead, context: {cluster: dead, user: dead, namespace: default}}]\n",
    )
    .unwrap();
    let config_path = config_for(&fixture, &dead);
    let listed = Targets::default()
        .list(&ListTargetsParams {
            config_path: Some(config_path.clone()),
            ..ListTargetsParams::default()
        })
        .unwrap();
    assert!(listed.targets.iter().any(|t| t.path == "targetless"));
    assert!(listed.targets.iter().all(|t| t.namespace.is_none()));
    // Asking for cluster kinds only gives the cluster's error.
    let error = Targets::default()
        .list(&ListTargetsParams {
            config_path: Some(config_path),
            kinds: Some(vec!["deployment".into()]),
            ..ListTargetsParams::default()
        })
        .unwrap_err();
    assert!(!error.is_empty());
}

/// Regression: completion asks for targets from the server's own runtime thread, where the
/// listing's runtime could not start (a panic, so no completion at all with a cluster configured).
#[test]
fn the_cluster_is_listed_from_inside_a_running_runtime() {
    let fixture = cluster();
    let config_path = config_for(&fixture, &fixture.kubeconfig);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listed = runtime.block_on(async {
        Targets::default().list(&ListTargetsParams {
            config_path: Some(config_path),
            kinds: Some(vec!["deployment".into()]),
            ..ListTargetsParams::default()
        })
    });
    assert!(
        listed
            .unwrap()
            .targets
            .iter()
            .any(|t| t.path == "deployment/api"),
        "deployments listed"
    );
}
