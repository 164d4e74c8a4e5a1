//! The library against a real control plane (`tests/cluster`: etcd, kube-apiserver,
//! controller-manager, scheduler, kwok and the node runner), with workloads made by the real
//! controllers: what the API server serves deserializes into k8s-openapi types, resolving every
//! kind to a ready pod and container, RBAC denials in the API server's words, and the agent
//! failing fast on an image that cannot be pulled or a pod the scheduler cannot place. Needs the
//! workspace built (`cargo build --workspace`), kubectl, and `tests/cluster/build.sh`.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Secret, Service};
use kube::api::{Api, ListParams};
use mirrord_config::ResolvedConfig;
use mirrord_config::resolved::KubeResource;
use mirrord_kube::{
    Cluster, KubeError, KubeSettings, ListOptions, ResolvedTarget, TargetPath, list_targets,
    resolve_target, spawn_agent,
};
use mirrord_test_cluster::{Backing, Cluster as TestCluster, ClusterOptions, NODE_NAME};

async fn connect(kubeconfig: &std::path::Path) -> Cluster {
    Cluster::connect(&KubeSettings {
        kubeconfig: Some(kubeconfig.display().to_string()),
        ..KubeSettings::default()
    })
    .await
    .unwrap()
}

/// How many objects of a kind kubectl sees in `default` (or cluster-wide for `--all`).
fn kubectl_count(test: &TestCluster, kind: &str) -> usize {
    test.get(&[kind, "-o", "name"]).lines().count()
}

async fn count<K>(cluster: &Cluster) -> usize
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
{
    let api: Api<K> = Api::default_namespaced(cluster.client.clone());
    api.list(&ListParams::default()).await.unwrap().items.len()
}

#[tokio::test]
async fn what_the_api_server_serves_deserializes_into_k8s_openapi_types() {
    let test = TestCluster::start(ClusterOptions::default());
    test.create_workloads(Backing::Idle, false);
    let cluster = connect(&test.kubeconfig).await;
    assert_eq!(cluster.default_namespace, "default");
    assert_eq!(count::<Pod>(&cluster).await, kubectl_count(&test, "pods"));
    assert_eq!(
        count::<Deployment>(&cluster).await,
        kubectl_count(&test, "deployments")
    );
    assert_eq!(
        count::<StatefulSet>(&cluster).await,
        kubectl_count(&test, "statefulsets")
    );
    assert_eq!(
        count::<ReplicaSet>(&cluster).await,
        kubectl_count(&test, "replicasets")
    );
    assert_eq!(count::<Job>(&cluster).await, kubectl_count(&test, "jobs"));
    assert_eq!(
        count::<CronJob>(&cluster).await,
        kubectl_count(&test, "cronjobs")
    );
    assert_eq!(
        count::<Service>(&cluster).await,
        kubectl_count(&test, "services")
    );
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    assert_eq!(
        namespaces
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        kubectl_count(&test, "namespaces")
    );
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let node = nodes.get(NODE_NAME).await.unwrap();
    assert!(
        node.status
            .unwrap()
            .conditions
            .unwrap()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    );
}

async fn resolve(cluster: &Cluster, path: &str) -> Result<ResolvedTarget, KubeError> {
    resolve_target(cluster, None, &TargetPath::parse(path).unwrap()).await
}

#[tokio::test]
async fn resolves_every_kind_to_a_ready_pod_and_container() {
    let test = TestCluster::start(ClusterOptions { rollouts: true });
    test.create_workloads(Backing::Idle, true);
    test.wait_for_cronjob_run();
    let cluster = connect(&test.kubeconfig).await;
    let pod_of = |selector: &str| {
        test.get(&[
            "pods",
            "-l",
            selector,
            "-o",
            "jsonpath={.items[0].metadata.name}",
        ])
    };
    let api_pod = pod_of("app=api");
    let api_replicaset = test.get(&[
        "replicasets",
        "-l",
        "app=api",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    let cron_job = test.get(&[
        "cronjob",
        "report",
        "-o",
        "jsonpath={.status.active[0].name}",
    ]);
    let check = async |path: &str, pod: &str, container: &str| {
        let resolved = resolve(&cluster, path)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(
            (resolved.pod_name.as_str(), resolved.container_name.as_str()),
            (pod, container),
            "{path}"
        );
        assert_eq!(resolved.node_name.as_deref(), Some(NODE_NAME));
        // The ID the node runner wrote into the pod's status.
        let id = test.get(&[
            "pod",
            pod,
            "-o",
            &format!(
                "jsonpath={{.status.containerStatuses[?(@.name==\"{container}\")].containerID}}"
            ),
        ]);
        assert_eq!(
            resolved.container_id.as_deref(),
            Some(id.as_str()),
            "{path}"
        );
    };
    check("deployment/api", &api_pod, "api").await;
    check(
        "deployment/api/container/istio-proxy",
        &api_pod,
        "istio-proxy",
    )
    .await;
    check(&format!("pod/{api_pod}"), &api_pod, "api").await;
    check(&format!("replicaset/{api_replicaset}"), &api_pod, "api").await;
    check("service/api", &api_pod, "api").await;
    check("statefulset/db", "db-0", "db").await;
    check(
        "job/migrate",
        &pod_of("batch.kubernetes.io/job-name=migrate"),
        "migrate",
    )
    .await;
    check(
        "cronjob/report",
        &pod_of(&format!("batch.kubernetes.io/job-name={cron_job}")),
        "report",
    )
    .await;
    check("rollout/web", &pod_of("app=web"), "web").await;

    let error = resolve(&cluster, "deployment/apii").await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "deployment `apii` not found in namespace `default`; did you mean api?"
    );
    let error = resolve(&cluster, "deployment/api/container/apii")
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains(&format!(
            "container `apii` not found in pod `{api_pod}` (its containers: api, istio-proxy)"
        )),
        "{error}"
    );
    let error = resolve(&cluster, "deployment/legacy").await.unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("deployment/legacy has no running and ready pod"),
        "{error}"
    );
}

#[tokio::test]
async fn forbidden_lists_name_the_verb_and_resource() {
    let test = TestCluster::start(ClusterOptions::default());
    test.create_workloads(Backing::Idle, false);
    let cluster = connect(&test.restricted_kubeconfig).await;
    let listing = list_targets(&cluster, &ListOptions::default())
        .await
        .unwrap();
    assert!(listing.targets.iter().all(|t| t.kind != "job"));
    assert!(listing.targets.iter().any(|t| t.path == "deployment/api"));
    assert_eq!(listing.warnings.len(), 1, "{:?}", listing.warnings);
    assert!(
        listing.warnings[0].starts_with("jobs left out: not allowed to list jobs.batch"),
        "{:?}",
        listing.warnings
    );
    let error = list_targets(
        &cluster,
        &ListOptions {
            kinds: vec![KubeResource::Job],
            ..ListOptions::default()
        },
    )
    .await
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("User \"mirrord-dev\" cannot list resource \"jobs\" in API group \"batch\" in the namespace \"default\""),
        "{error}"
    );
    assert!(
        error.help().unwrap().contains(
            "kubectl create role mirrord-user --verb=list --resource=jobs.batch -n default"
        ),
        "{:?}",
        error.help()
    );
}

async fn leftovers(cluster: &Cluster) -> Vec<String> {
    let jobs: Api<Job> = Api::default_namespaced(cluster.client.clone());
    let secrets: Api<Secret> = Api::default_namespaced(cluster.client.clone());
    let selector = ListParams::default().labels("mirrord.dev/session");
    let mut names: Vec<String> = jobs
        .list(&selector)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|j| j.metadata.name)
        .collect();
    names.extend(
        secrets
            .list(&selector)
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|s| s.metadata.name),
    );
    names
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_fails_fast_and_cleans_up() {
    let test = TestCluster::start(ClusterOptions::default());
    test.create_workloads(Backing::Idle, false);
    let cluster = connect(&test.kubeconfig).await;
    let target = resolve(&cluster, "deployment/api").await.unwrap();
    let mut config = ResolvedConfig::default();
    config.agent.image = "registry.example/does-not-exist:1.0".to_owned();
    // Failing fast means an AgentFailed error long before this start-up timeout, which the
    // test's own time limit (below) would otherwise cut short.
    config.agent.startup_timeout = 600;
    let mut steps = Vec::new();
    let error = tokio::time::timeout(
        Duration::from_secs(60),
        spawn_agent(
            &cluster,
            &config,
            &target,
            "c0ffee",
            "t1-pull",
            None,
            &mut |s| steps.push(s.to_owned()),
        ),
    )
    .await
    .expect("the pull failure ends the wait instead of the start-up timeout")
    .unwrap_err();
    let KubeError::AgentFailed {
        reason, message, ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert!(
        reason == "ErrImagePull" || reason == "ImagePullBackOff",
        "{reason}"
    );
    assert!(
        message.contains("registry.example/does-not-exist:1.0"),
        "{message}"
    );
    assert!(error.help().unwrap().contains("agent.image"));
    assert!(
        steps.iter().any(|s| s.contains("creating the agent Job")),
        "{steps:?}"
    );
    // The Job is deleted and the garbage collector removes its pod and Secret.
    let mut left = leftovers(&cluster).await;
    for _ in 0..60 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        left = leftovers(&cluster).await;
    }
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// The real scheduler's words when the agent's pod cannot be placed.
#[tokio::test]
async fn an_unschedulable_agent_fails_with_the_scheduler_message() {
    let test = TestCluster::start(ClusterOptions::default());
    test.create_workloads(Backing::Idle, false);
    let cluster = connect(&test.kubeconfig).await;
    let target = resolve(&cluster, "deployment/api").await.unwrap();
    let mut config = ResolvedConfig::default();
    config
        .agent
        .node_selector
        .insert("dedicated".to_owned(), "gpu".to_owned());
    config.agent.startup_timeout = 60;
    let error = spawn_agent(
        &cluster,
        &config,
        &target,
        "c0ffee",
        "t2-sched",
        None,
        &mut |_| {},
    )
    .await
    .unwrap_err();
    let KubeError::AgentFailed {
        reason, message, ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(reason, "Unschedulable");
    assert!(
        message.starts_with("0/1 nodes are available: "),
        "{message}"
    );
    assert!(
        message.contains("node(s) didn't match Pod's node affinity/selector"),
        "{message}"
    );
}
