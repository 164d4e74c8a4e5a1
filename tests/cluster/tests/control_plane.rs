//! The harness itself: a cluster starts, its real controllers and scheduler place a
//! Deployment's pods on the node, the node runner runs them, and kubectl (a real client) sees it.

use std::time::Duration;

use mirrord_test_cluster::{Cluster, ClusterOptions, IDLE_IMAGE, NODE_NAME};

#[test]
fn a_deployment_runs_on_the_node() {
    let cluster = Cluster::start(ClusterOptions::default());
    cluster.apply(&format!(
        r#"{{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {{"name": "idle"}},
          "spec": {{"replicas": 2, "selector": {{"matchLabels": {{"app": "idle"}}}},
            "template": {{"metadata": {{"labels": {{"app": "idle"}}}},
              "spec": {{"containers": [{{"name": "main", "image": "{IDLE_IMAGE}"}}]}}}}}}}}"#
    ));
    cluster.wait_for(
        &[
            "deployment",
            "idle",
            "-o",
            "jsonpath={.status.availableReplicas}",
        ],
        "2",
        Duration::from_secs(60),
    );
    let nodes = cluster.get(&[
        "pods",
        "-l",
        "app=idle",
        "-o",
        "jsonpath={.items[*].spec.nodeName}",
    ]);
    assert_eq!(nodes, format!("{NODE_NAME} {NODE_NAME}"));
    let ids = cluster.get(&[
        "pods",
        "-l",
        "app=idle",
        "-o",
        "jsonpath={.items[*].status.containerStatuses[0].containerID}",
    ]);
    assert!(
        ids.split(' ')
            .all(|id| id.starts_with("containerd://") && id.len() == 13 + 64),
        "{ids}"
    );
}

#[test]
fn the_standard_workloads_come_up() {
    let cluster = Cluster::start(ClusterOptions { rollouts: true });
    cluster.create_workloads(mirrord_test_cluster::Backing::Idle, true);
    let pods = cluster.get(&["pods", "-o", "name"]);
    for prefix in [
        "pod/api-",
        "pod/db-0",
        "pod/migrate-",
        "pod/web-5d8f7c-",
        "pod/legacy-",
    ] {
        assert!(pods.contains(prefix), "no {prefix} in {pods}");
    }
}
