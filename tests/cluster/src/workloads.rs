//! The workloads the cluster tests list and target, created through the API so that the real
//! controllers make their pods: Deployment → ReplicaSet → Pods, StatefulSet, Job, CronJob → Job
//! (every minute; see [`Cluster::wait_for_cronjob_run`]), an Argo Rollout through
//! its CRD with the ReplicaSet Argo would make, a Service, and a Deployment in `staging`.

use std::time::Duration;

use crate::{Cluster, IDLE_IMAGE, SANDBOX_IMAGE_PREFIX};

/// What the `api` Deployment's `api` container runs.
#[derive(Debug, Clone, Copy)]
pub enum Backing<'a> {
    /// A `sleep` process.
    Idle,
    /// The sandbox pod of this name (its files, environment, DNS and HTTP service on port 80).
    Sandbox(&'a str),
}

/// The pod template of a workload labelled `app=NAME` whose first container is `main`.
fn template(app: &str, container: &str, image: &str, extra: &str) -> String {
    format!(
        r#"{{"metadata": {{"labels": {{"app": "{app}"}}}},
          "spec": {{"terminationGracePeriodSeconds": 0, "containers": [{{"name": "{container}", "image": "{image}", "ports": [{{"containerPort": 80}}]}}{extra}]}}}}"#
    )
}

impl Cluster {
    /// Creates the standard workloads and waits until the controllers have made their pods and
    /// the node runs them. `deployment/legacy`'s image cannot be pulled, so it is not available.
    pub fn create_workloads(&self, api: Backing<'_>, rollouts: bool) {
        let api_image = match api {
            Backing::Idle => IDLE_IMAGE.to_owned(),
            Backing::Sandbox(name) => format!("{SANDBOX_IMAGE_PREFIX}{name}"),
        };
        let sidecar = format!(r#", {{"name": "istio-proxy", "image": "{IDLE_IMAGE}"}}"#);
        let objects = [
            format!(
                r#"{{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {{"name": "api"}},
                  "spec": {{"replicas": 1, "selector": {{"matchLabels": {{"app": "api"}}}}, "template": {}}}}}"#,
                template("api", "api", &api_image, &sidecar)
            ),
            format!(
                r#"{{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {{"name": "legacy"}},
                  "spec": {{"replicas": 1, "selector": {{"matchLabels": {{"app": "legacy"}}}}, "template": {}}}}}"#,
                template("legacy", "legacy", "registry.example/legacy:1", "")
            ),
            format!(
                r#"{{"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {{"name": "db"}},
                  "spec": {{"replicas": 1, "serviceName": "db", "selector": {{"matchLabels": {{"app": "db"}}}}, "template": {}}}}}"#,
                template("db", "db", IDLE_IMAGE, "")
            ),
            format!(
                r#"{{"apiVersion": "batch/v1", "kind": "Job", "metadata": {{"name": "migrate"}},
                  "spec": {{"backoffLimit": 0, "template": {{"spec": {{"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                    "containers": [{{"name": "migrate", "image": "{IDLE_IMAGE}"}}]}}}}}}}}"#
            ),
            format!(
                r#"{{"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {{"name": "report"}},
                  "spec": {{"schedule": "* * * * *", "concurrencyPolicy": "Forbid", "jobTemplate": {{"spec": {{"backoffLimit": 0, "template": {{"spec": {{"restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 0, "containers": [{{"name": "report", "image": "{IDLE_IMAGE}"}}]}}}}}}}}}}}}"#
            ),
            r#"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api"},
              "spec": {"selector": {"app": "api"}, "ports": [{"port": 80, "targetPort": 80}]}}"#
                .to_owned(),
            r#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "staging"}}"#
                .to_owned(),
        ];
        for object in &objects {
            self.apply(object);
        }
        self.apply(&format!(
            r#"{{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {{"name": "cache", "namespace": "staging"}},
              "spec": {{"replicas": 1, "selector": {{"matchLabels": {{"app": "cache"}}}}, "template": {}}}}}"#,
            template("cache", "cache", IDLE_IMAGE, "")
        ));
        if rollouts {
            self.apply(&format!(
                r#"{{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {{"name": "web"}},
                  "spec": {{"replicas": 1, "selector": {{"matchLabels": {{"app": "web"}}}}, "template": {}}}}}"#,
                template("web", "web", IDLE_IMAGE, "")
            ));
            let uid = self.get(&["rollout", "web", "-o", "jsonpath={.metadata.uid}"]);
            // The ReplicaSet Argo's controller would make for the Rollout's first revision.
            self.apply(&format!(
                r#"{{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                  "metadata": {{"name": "web-5d8f7c", "labels": {{"app": "web", "rollouts-pod-template-hash": "5d8f7c"}},
                    "ownerReferences": [{{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "web", "uid": "{uid}", "controller": true, "blockOwnerDeletion": true}}]}},
                  "spec": {{"replicas": 1, "selector": {{"matchLabels": {{"app": "web", "rollouts-pod-template-hash": "5d8f7c"}}}},
                    "template": {{"metadata": {{"labels": {{"app": "web", "rollouts-pod-template-hash": "5d8f7c"}}}},
                      "spec": {{"terminationGracePeriodSeconds": 0, "containers": [{{"name": "web", "image": "{IDLE_IMAGE}"}}]}}}}}}}}"#
            ));
        }
        let limit = Duration::from_secs(60);
        self.wait_for(
            &[
                "deployment",
                "api",
                "-o",
                "jsonpath={.status.availableReplicas}",
            ],
            "1",
            limit,
        );
        self.wait_for(
            &[
                "statefulset",
                "db",
                "-o",
                "jsonpath={.status.readyReplicas}",
            ],
            "1",
            limit,
        );
        self.wait_for(
            &["job", "migrate", "-o", "jsonpath={.status.ready}"],
            "1",
            limit,
        );
        self.wait_for(
            &[
                "-n",
                "staging",
                "deployment",
                "cache",
                "-o",
                "jsonpath={.status.availableReplicas}",
            ],
            "1",
            limit,
        );
        if rollouts {
            self.wait_for(
                &[
                    "replicaset",
                    "web-5d8f7c",
                    "-o",
                    "jsonpath={.status.readyReplicas}",
                ],
                "1",
                limit,
            );
            // The status Argo's controller reports once its ReplicaSet's pod is ready.
            let patched = self
                .kubectl()
                .args([
                    "patch",
                    "rollout",
                    "web",
                    "--subresource=status",
                    "--type=merge",
                    "-p",
                    r#"{"status": {"replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1}}"#,
                ])
                .output()
                .expect("kubectl runs");
            assert!(
                patched.status.success(),
                "kubectl patch rollout web --subresource=status: {}",
                String::from_utf8_lossy(&patched.stderr)
            );
        }
        self.wait_for(
            &[
                "pods",
                "-l",
                "app=legacy",
                "-o",
                "jsonpath={.items[0].status.containerStatuses[0].state.waiting.reason}",
            ],
            "ImagePullBackOff",
            limit,
        );
    }

    /// Waits until the CronJob controller has started `cronjob/report`'s first Job (at the next
    /// minute) and its pod is ready.
    pub fn wait_for_cronjob_run(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(75);
        loop {
            let active = self.get(&[
                "cronjob",
                "report",
                "-o",
                "jsonpath={.status.active[0].name}",
            ]);
            if !active.is_empty() {
                self.wait_for(
                    &["job", &active, "-o", "jsonpath={.status.ready}"],
                    "1",
                    Duration::from_secs(30),
                );
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the CronJob controller started no Job for cronjob/report; controller-manager:\n{}",
                self.log("kube-controller-manager")
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}
