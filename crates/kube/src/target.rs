//! Target paths and the pure rules about pods: which containers are service-mesh sidecars, which
//! container a path means, when a pod can be a target, how a workload's selector reads as a label
//! selector, and which names are close to a misspelt one.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use mirrord_config::resolved::{KubeResource, Target};

use crate::error::KubeError;

/// Containers injected by service meshes and secret agents; never a target unless named.
pub const MESH_CONTAINERS: &[&str] = &[
    "istio-proxy",
    "istio-init",
    "istio-validation",
    "linkerd-proxy",
    "linkerd-init",
    "linkerd-network-validator",
    "vault-agent",
    "vault-agent-init",
    "kuma-sidecar",
    "kuma-init",
    "envoy-sidecar",
    "consul-dataplane",
    "consul-connect-inject-init",
    "aws-appmesh-envoy",
    "aws-appmesh-proxy-route-manager",
    "dapr-sidecar",
];

/// The annotation naming the container `kubectl exec`/`logs` use by default.
pub const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";

/// Whether `name` is a mesh or agent sidecar.
pub fn is_mesh_container(name: &str) -> bool {
    MESH_CONTAINERS.contains(&name)
}

/// A Kubernetes target path, split: `deployment/api/container/web`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPath {
    /// The kind.
    pub resource: KubeResource,
    /// The object's name.
    pub name: String,
    /// The container, when the path names one.
    pub container: Option<String>,
}

impl TargetPath {
    /// Parses a path (`pod/NAME`, `deployment/NAME/container/C`, …); an error says what is wrong.
    pub fn parse(path: &str) -> Result<TargetPath, KubeError> {
        match Target::parse(path) {
            Some(Target::Kube {
                resource,
                name,
                container,
            }) => Ok(TargetPath {
                resource,
                name,
                container,
            }),
            Some(_) => Err(KubeError::UnsupportedTarget(format!(
                "`{path}` is a local target, not a Kubernetes one"
            ))),
            None => {
                let kind = path.split('/').next().unwrap_or("");
                let kinds = [
                    "pod",
                    "deployment",
                    "rollout",
                    "statefulset",
                    "replicaset",
                    "job",
                    "cronjob",
                    "service",
                ];
                let hint = match mirrord_config::suggest::closest(kind, kinds) {
                    Some(close) if close != kind => format!("; did you mean `{close}/…`?"),
                    _ => String::new(),
                };
                Err(KubeError::UnsupportedTarget(format!(
                    "`{path}` is not a target path: use KIND/NAME or KIND/NAME/container/CONTAINER with KIND one of {}{hint}",
                    kinds.join(", ")
                )))
            }
        }
    }

    /// The path from a resolved config's target, if it is a Kubernetes one.
    pub fn from_target(target: &Target) -> Option<TargetPath> {
        match target {
            Target::Kube {
                resource,
                name,
                container,
            } => Some(TargetPath {
                resource: *resource,
                name: name.clone(),
                container: container.clone(),
            }),
            _ => None,
        }
    }
}

impl std::fmt::Display for TargetPath {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}/{}", self.resource.as_str(), self.name)?;
        if let Some(container) = &self.container {
            write!(formatter, "/container/{container}")?;
        }
        Ok(())
    }
}

/// Whether a pod is Running with its Ready condition true (and not being deleted).
pub fn pod_is_ready(pod: &Pod) -> bool {
    let Some(status) = &pod.status else {
        return false;
    };
    pod.metadata.deletion_timestamp.is_none()
        && status.phase.as_deref() == Some("Running")
        && status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The pod's containers that are not sidecars, in spec order.
pub fn app_containers(pod: &Pod) -> Vec<String> {
    pod.spec
        .iter()
        .flat_map(|spec| &spec.containers)
        .map(|c| c.name.clone())
        .filter(|name| !is_mesh_container(name))
        .collect()
}

/// The container a target means: the named one, else the default-container annotation, else the
/// first container that is not a sidecar.
pub fn choose_container(pod: &Pod, requested: Option<&str>) -> Result<String, KubeError> {
    let names: Vec<String> = pod
        .spec
        .iter()
        .flat_map(|spec| &spec.containers)
        .map(|c| c.name.clone())
        .collect();
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    if let Some(requested) = requested {
        if names.iter().any(|n| n == requested) {
            return Ok(requested.to_owned());
        }
        return Err(KubeError::ContainerNotFound {
            container: requested.to_owned(),
            pod: pod_name,
            available: names.join(", "),
        });
    }
    let annotated = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEFAULT_CONTAINER_ANNOTATION))
        .filter(|name| names.contains(name));
    if let Some(name) = annotated {
        return Ok(name.clone());
    }
    names
        .iter()
        .find(|n| !is_mesh_container(n))
        .or(names.first())
        .cloned()
        .ok_or_else(|| KubeError::ContainerNotFound {
            container: "(any)".to_owned(),
            pod: pod_name,
            available: String::new(),
        })
}

/// A workload's selector as a label selector string (`a=b,c in (d,e)`); `None` if it selects
/// nothing.
pub fn selector_string(selector: &LabelSelector) -> Option<String> {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    for expression in selector.match_expressions.iter().flatten() {
        let values = expression.values.clone().unwrap_or_default().join(",");
        parts.push(match expression.operator.as_str() {
            "In" => format!("{} in ({values})", expression.key),
            "NotIn" => format!("{} notin ({values})", expression.key),
            "Exists" => expression.key.clone(),
            "DoesNotExist" => format!("!{}", expression.key),
            _ => continue,
        });
    }
    (!parts.is_empty()).then(|| parts.join(","))
}

/// Names among `candidates` that look like `name`: a small edit distance, or one contains the
/// other (`api` → `api-v2`). Closest first, at most five.
pub fn close_matches(name: &str, candidates: &[String]) -> Vec<String> {
    let limit = (name.chars().count() / 3).clamp(1, 4);
    let mut scored: Vec<(usize, &String)> = candidates
        .iter()
        .filter_map(|candidate| {
            let distance = mirrord_config::suggest::edit_distance(name, candidate);
            let related = candidate.contains(name)
                || (name.contains(candidate.as_str()) && candidate.len() >= 3);
            (distance <= limit || related).then_some((distance, candidate))
        })
        .collect();
    scored.sort();
    scored.into_iter().take(5).map(|(_, c)| c.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    fn check_path(path: &str, expected: Result<(&str, &str, Option<&str>), &str>) {
        let actual = TargetPath::parse(path)
            .map(|p| (p.resource.as_str(), p.name.clone(), p.container.clone()))
            .map_err(|e| e.to_string());
        match (actual, expected) {
            (Ok((kind, name, container)), Ok((k, n, c))) => {
                assert_eq!(
                    (kind, name.as_str(), container.as_deref()),
                    (k, n, c),
                    "{path}"
                );
                assert_eq!(
                    TargetPath::parse(path).unwrap().to_string(),
                    path.replace("podname/", "pod/")
                );
            }
            (Err(message), Err(fragment)) => {
                assert!(message.contains(fragment), "{path}: {message}")
            }
            (actual, expected) => panic!("{path}: got {actual:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn target_paths() {
        check_path("pod/api-7f9c", Ok(("pod", "api-7f9c", None)));
        check_path("podname/api-7f9c", Ok(("pod", "api-7f9c", None)));
        check_path(
            "deployment/api/container/web",
            Ok(("deployment", "api", Some("web"))),
        );
        check_path("rollout/web", Ok(("rollout", "web", None)));
        check_path(
            "statefulset/db/container/postgres",
            Ok(("statefulset", "db", Some("postgres"))),
        );
        check_path("cronjob/report", Ok(("cronjob", "report", None)));
        check_path("deploymnt/api", Err("did you mean `deployment/…`?"));
        check_path("deployment/api/web", Err("not a target path"));
        check_path("pid/42", Err("local target"));
        check_path("deployment", Err("not a target path"));
    }

    #[test]
    fn container_choice() {
        let with_sidecar = pod(json!({
            "metadata": {"name": "api-1"},
            "spec": {"containers": [{"name": "istio-proxy"}, {"name": "api"}, {"name": "worker"}]}
        }));
        assert_eq!(choose_container(&with_sidecar, None).unwrap(), "api");
        assert_eq!(
            choose_container(&with_sidecar, Some("worker")).unwrap(),
            "worker"
        );
        assert_eq!(
            choose_container(&with_sidecar, Some("istio-proxy")).unwrap(),
            "istio-proxy"
        );
        let error = choose_container(&with_sidecar, Some("wrkr"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "container `wrkr` not found in pod `api-1` (its containers: istio-proxy, api, worker)"
        );
        let annotated = pod(json!({
            "metadata": {"name": "api-1", "annotations": {DEFAULT_CONTAINER_ANNOTATION: "worker"}},
            "spec": {"containers": [{"name": "api"}, {"name": "worker"}]}
        }));
        assert_eq!(choose_container(&annotated, None).unwrap(), "worker");
        assert_eq!(app_containers(&with_sidecar), ["api", "worker"]);
    }

    #[test]
    fn readiness() {
        let ready = |phase: &str, status: &str| {
            pod_is_ready(&pod(
                json!({"status": {"phase": phase, "conditions": [{"type": "Ready", "status": status}]}}),
            ))
        };
        assert!(ready("Running", "True"));
        assert!(!ready("Running", "False"));
        assert!(!ready("Pending", "True"));
    }

    #[test]
    fn selectors_read_as_label_selectors() {
        let selector: LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"app": "api"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "edge"]}, {"key": "canary", "operator": "DoesNotExist"}]
        })).unwrap();
        assert_eq!(
            selector_string(&selector).unwrap(),
            "app=api,tier in (web,edge),!canary"
        );
        assert_eq!(selector_string(&LabelSelector::default()), None);
    }

    #[test]
    fn close_names() {
        let names: Vec<String> = ["api", "api-v2", "worker", "db", "apis"]
            .map(String::from)
            .to_vec();
        assert_eq!(close_matches("apj", &names), ["api"]);
        assert_eq!(close_matches("api", &names), ["api", "apis", "api-v2"]);
        assert!(close_matches("zzzzzzzz", &names).is_empty());
    }
}
