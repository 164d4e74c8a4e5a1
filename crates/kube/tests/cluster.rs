//! The library against the fixture API server (`tests/kube-fixture`): every object it serves
//! deserializes into k8s-openapi types, listing, resolving, RBAC errors, and the agent failing
//! fast. Needs the workspace built (`cargo build --workspace`); the agent-start tests run no
//! agent process (their images cannot be pulled, or their pods cannot be scheduled).

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
use mirrord_kube_fixture::{Fixture, FixtureOptions};

async fn connect(fixture: &Fixture) -> Cluster {
    Cluster::connect(&KubeSettings {
        kubeconfig: Some(fixture.kubeconfig.display().to_string()),
        ..KubeSettings::default()
    })
    .await
    .unwrap()
}

async fn check_list<K>(cluster: &Cluster, namespaced: bool) -> usize
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
{
    let api: Api<K> = if namespaced {
        Api::namespaced(cluster.client.clone(), "default")
    } else {
        Api::all(cluster.client.clone())
    };
    let items = api.list(&ListParams::default()).await.unwrap().items;
    for item in &items {
        let name = item.meta().name.clone().unwrap();
        let namespaced_api: Api<K> = Api::namespaced(
            cluster.client.clone(),
            item.meta().namespace.as_deref().unwrap(),
        );
        namespaced_api.get(&name).await.unwrap();
    }
    items.len()
}

#[tokio::test]
async fn every_served_object_deserializes_into_k8s_openapi_types() {
    let fixture = Fixture::start(FixtureOptions::default());
    let cluster = connect(&fixture).await;
    assert_eq!(cluster.default_namespace, "default");
    assert_eq!(check_list::<Pod>(&cluster, false).await, 9);
    assert_eq!(check_list::<Deployment>(&cluster, false).await, 3);
    assert_eq!(check_list::<StatefulSet>(&cluster, true).await, 1);
    assert_eq!(check_list::<ReplicaSet>(&cluster, true).await, 2);
    assert_eq!(check_list::<Job>(&cluster, true).await, 2);
    assert_eq!(check_list::<CronJob>(&cluster, true).await, 1);
    assert_eq!(check_list::<Service>(&cluster, true).await, 1);
    check_list::<Secret>(&cluster, true).await;
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    assert_eq!(
        namespaces
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    assert_eq!(
        nodes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    let version = cluster.client.apiserver_version().await.unwrap();
    assert_eq!(version.major, "1");
}

fn entry<'a>(
    listing: &'a mirrord_kube::TargetListing,
    path: &str,
) -> &'a mirrord_kube::TargetEntry {
    listing
        .targets
        .iter()
        .find(|t| t.path == path)
        .unwrap_or_else(|| panic!("{path} is not listed: {:#?}", listing.targets))
}

#[tokio::test]
async fn lists_targets_page_by_page_without_agents_or_sidecars() {
    let fixture = Fixture::start(FixtureOptions::default());
    let cluster = connect(&fixture).await;
    let options = ListOptions {
        page_size: Some(2),
        ..ListOptions::default()
    };
    let listing = list_targets(&cluster, &options).await.unwrap();
    assert_eq!(listing.current_namespace, "default");
    assert_eq!(listing.namespaces, ["default", "staging"]);
    assert!(listing.warnings.is_empty());
    assert!(entry(&listing, "pod/api-7f9c5d-x2k4p").available);
    assert!(
        !entry(&listing, "pod/api-7f9c5d-b8n2q").available,
        "a pod that is not ready"
    );
    assert!(entry(&listing, "deployment/api").available);
    assert!(!entry(&listing, "deployment/legacy").available);
    assert!(entry(&listing, "rollout/web").available);
    assert!(entry(&listing, "statefulset/db").available);
    assert!(entry(&listing, "replicaset/worker").available);
    assert!(entry(&listing, "job/migrate").available);
    assert!(entry(&listing, "cronjob/report").available);
    entry(&listing, "pod/worker-5xq9z/container/log-shipper");
    assert!(
        listing
            .targets
            .iter()
            .all(|t| !t.path.contains("mirrord-agent")),
        "agent pods are not targets"
    );
    assert!(
        listing
            .targets
            .iter()
            .all(|t| !t.path.contains("istio-proxy") && !t.path.contains("linkerd-proxy"))
    );
    // Same listing in one page.
    let whole = list_targets(&cluster, &ListOptions::default())
        .await
        .unwrap();
    assert_eq!(whole.targets, listing.targets);

    let staging = list_targets(
        &cluster,
        &ListOptions {
            namespace: Some("staging".to_owned()),
            kinds: vec![KubeResource::Deployment],
            page_size: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(staging.targets.len(), 1);
    assert_eq!(staging.targets[0].path, "deployment/cache");
    assert_eq!(staging.targets[0].namespace, "staging");
}

#[tokio::test]
async fn rollouts_are_found_by_discovery() {
    let fixture = Fixture::start(FixtureOptions {
        no_rollouts: true,
        ..FixtureOptions::default()
    });
    let cluster = connect(&fixture).await;
    let listing = list_targets(&cluster, &ListOptions::default())
        .await
        .unwrap();
    assert!(listing.targets.iter().all(|t| t.kind != "rollout"));
    assert!(!listing.targets.is_empty());
    let error = resolve_target(&cluster, None, &TargetPath::parse("rollout/web").unwrap())
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("does not serve Argo Rollouts"),
        "{error}"
    );
}

#[tokio::test]
async fn forbidden_lists_name_the_verb_and_resource() {
    let fixture = Fixture::start(FixtureOptions {
        forbid: vec!["list:jobs.batch".to_owned(), "list:namespaces".to_owned()],
        ..FixtureOptions::default()
    });
    let cluster = connect(&fixture).await;
    let listing = list_targets(&cluster, &ListOptions::default())
        .await
        .unwrap();
    assert!(listing.targets.iter().all(|t| t.kind != "job"));
    assert_eq!(
        listing.namespaces,
        ["default"],
        "only the current namespace when namespaces are forbidden"
    );
    assert_eq!(listing.warnings.len(), 1);
    assert!(
        listing.warnings[0]
            .starts_with("jobs left out: not allowed to list jobs.batch in namespace `default`"),
        "{}",
        listing.warnings[0]
    );

    let options = ListOptions {
        kinds: vec![KubeResource::Job],
        ..ListOptions::default()
    };
    let error = list_targets(&cluster, &options).await.unwrap_err();
    assert!(
        matches!(&error, KubeError::Forbidden { verb, resource, .. } if verb == "list" && resource == "jobs.batch")
    );
    assert_eq!(
        error.to_string(),
        "not allowed to list jobs.batch in namespace `default`: jobs.batch is forbidden: User \"mirrord-dev\" cannot list resource \"jobs\" in API group \"batch\" in the namespace \"default\""
    );
    let help = error.help().unwrap();
    assert!(
        help.contains(
            "kubectl create role mirrord-user --verb=list --resource=jobs.batch -n default"
        ),
        "{help}"
    );
}

async fn resolve(cluster: &Cluster, path: &str) -> Result<ResolvedTarget, KubeError> {
    resolve_target(cluster, None, &TargetPath::parse(path).unwrap()).await
}

#[tokio::test]
async fn resolves_targets_to_a_ready_pod_and_container() {
    let fixture = Fixture::start(FixtureOptions::default());
    let cluster = connect(&fixture).await;
    let check = async |path: &str, pod: &str, container: &str| {
        let resolved = resolve(&cluster, path)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(
            (resolved.pod_name.as_str(), resolved.container_name.as_str()),
            (pod, container),
            "{path}"
        );
        assert_eq!(resolved.node_name.as_deref(), Some("node-1"));
        assert!(
            resolved
                .container_id
                .as_deref()
                .unwrap()
                .starts_with("containerd://")
        );
    };
    check("deployment/api", "api-7f9c5d-x2k4p", "api").await;
    check(
        "deployment/api/container/istio-proxy",
        "api-7f9c5d-x2k4p",
        "istio-proxy",
    )
    .await;
    check("pod/api-7f9c5d-x2k4p", "api-7f9c5d-x2k4p", "api").await;
    check("replicaset/api-7f9c5d", "api-7f9c5d-x2k4p", "api").await;
    check("service/api", "api-7f9c5d-x2k4p", "api").await;
    check("pod/worker-5xq9z", "worker-5xq9z", "worker").await;
    check(
        "replicaset/worker/container/log-shipper",
        "worker-5xq9z",
        "log-shipper",
    )
    .await;
    check("statefulset/db", "db-0", "postgres").await;
    check("job/migrate", "migrate-q4w8r", "migrate").await;
    check("cronjob/report", "report-29400000-m2vxd", "report").await;
    check("rollout/web", "web-6d8f9b-7k2lp", "web").await;

    let error = resolve(&cluster, "deployment/apii").await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "deployment `apii` not found in namespace `default`; did you mean api?"
    );
    let error = resolve(&cluster, "pod/api-7f9c5d-x2k4").await.unwrap_err();
    assert!(
        error.to_string().contains("did you mean api-7f9c5d-x2k4p?"),
        "{error}"
    );
    let error = resolve(&cluster, "deployment/api/container/apii")
        .await
        .unwrap_err();
    assert!(error.to_string().contains("container `apii` not found in pod `api-7f9c5d-x2k4p` (its containers: api, istio-proxy)"), "{error}");
    let error = resolve(&cluster, "pod/api-7f9c5d-b8n2q").await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "pod/api-7f9c5d-b8n2q has no running and ready pod (api-7f9c5d-b8n2q: Running, not ready)"
    );
    let error = resolve(&cluster, "deployment/legacy").await.unwrap_err();
    assert!(
        error.to_string().contains("no pod matches `app=legacy`"),
        "{error}"
    );
}

async fn agent_jobs(cluster: &Cluster) -> Vec<String> {
    let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), "default");
    jobs.list(&ListParams::default().labels("mirrord.dev/agent"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|j| j.metadata.name)
        .collect()
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_fails_fast_and_cleans_up() {
    let fixture = Fixture::start(FixtureOptions::default());
    let cluster = connect(&fixture).await;
    let target = resolve(&cluster, "deployment/api").await.unwrap();
    let mut config = ResolvedConfig::default();
    config.agent.image = "registry.example/does-not-exist:1.0".to_owned();
    // Failing fast means an AgentFailed error long before this start-up timeout, which the
    // test's own time limit (below) would otherwise cut short.
    config.agent.startup_timeout = 600;
    let mut steps = Vec::new();
    let error = tokio::time::timeout(
        Duration::from_secs(60),
        spawn_agent(&cluster, &config, &target, "c0ffee", "t1-pull", &mut |s| {
            steps.push(s.to_owned())
        }),
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
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        agent_jobs(&cluster).await.is_empty(),
        "the failed agent's Job is deleted"
    );
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), "default");
    assert!(
        secrets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "and its Secret"
    );
}

#[tokio::test]
async fn an_unschedulable_agent_fails_with_the_scheduler_message() {
    let fixture = Fixture::start(FixtureOptions::default());
    let cluster = connect(&fixture).await;
    let target = resolve(&cluster, "deployment/api").await.unwrap();
    let mut config = ResolvedConfig::default();
    config
        .agent
        .node_selector
        .insert("dedicated".to_owned(), "gpu".to_owned());
    let error = spawn_agent(
        &cluster,
        &config,
        &target,
        "c0ffee",
        "t2-sched",
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
        message.starts_with("0/2 nodes are available: "),
        "{message}"
    );
    assert!(
        message.contains("node(s) didn't match Pod's node affinity/selector"),
        "{message}"
    );
}

#[tokio::test]
async fn an_agent_that_cannot_find_its_target_fails_with_its_reason() {
    let fixture = Fixture::start(FixtureOptions::default());
    let cluster = connect(&fixture).await;
    // A target whose container ID is not a running process: the agent exits, and the pod fails.
    let mut target = resolve(&cluster, "deployment/api").await.unwrap();
    target.container_id = Some(
        "containerd://0000000000000000000000000000000000000000000000000000000000000001".to_owned(),
    );
    let mut config = ResolvedConfig::default();
    config.agent.image = format!("{}:test", mirrord_kube_fixture::AGENT_IMAGE_REPOSITORY);
    config.agent.startup_timeout = 20;
    let error = spawn_agent(
        &cluster,
        &config,
        &target,
        &"ab".repeat(32),
        "t3-gone",
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
    assert_eq!(reason, "Error");
    assert!(message.contains("no process of container 0000000000000000000000000000000000000000000000000000000000000001"), "{message}");
}
