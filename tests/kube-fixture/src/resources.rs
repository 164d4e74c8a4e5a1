//! The API resources this server knows: their group, version, kind and verbs, and the discovery
//! documents (`/api`, `/apis`, `/api/v1`, `/apis/GROUP/VERSION`) built from them.

use serde_json::{Value, json};

/// One resource type the server serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resource {
    /// `""` for the core group.
    pub(crate) group: &'static str,
    pub(crate) version: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) plural: &'static str,
    pub(crate) singular: &'static str,
    pub(crate) namespaced: bool,
    pub(crate) short_names: &'static [&'static str],
    pub(crate) verbs: &'static [&'static str],
    /// Subresources served (`status`, `portforward`, `ephemeralcontainers`, …).
    pub(crate) subresources: &'static [&'static str],
}

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

impl Resource {
    /// `pods`, `jobs.batch`: the name RBAC messages and store keys use.
    pub(crate) fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `v1`, `batch/v1`.
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `Pod`, `Job.batch`: how validation messages name the kind.
    pub(crate) fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_owned()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }
}

pub(crate) const POD: Resource = Resource {
    group: "",
    version: "v1",
    kind: "Pod",
    plural: "pods",
    singular: "pod",
    namespaced: true,
    short_names: &["po"],
    verbs: ALL_VERBS,
    subresources: &["status", "portforward", "ephemeralcontainers", "log"],
};

pub(crate) const NAMESPACE: Resource = Resource {
    group: "",
    version: "v1",
    kind: "Namespace",
    plural: "namespaces",
    singular: "namespace",
    namespaced: false,
    short_names: &["ns"],
    verbs: &[
        "create", "delete", "get", "list", "patch", "update", "watch",
    ],
    subresources: &["status"],
};

pub(crate) const NODE: Resource = Resource {
    group: "",
    version: "v1",
    kind: "Node",
    plural: "nodes",
    singular: "node",
    namespaced: false,
    short_names: &["no"],
    verbs: ALL_VERBS,
    subresources: &["status"],
};

pub(crate) const SECRET: Resource = Resource {
    group: "",
    version: "v1",
    kind: "Secret",
    plural: "secrets",
    singular: "secret",
    namespaced: true,
    short_names: &[],
    verbs: ALL_VERBS,
    subresources: &[],
};

pub(crate) const SERVICE: Resource = Resource {
    group: "",
    version: "v1",
    kind: "Service",
    plural: "services",
    singular: "service",
    namespaced: true,
    short_names: &["svc"],
    verbs: ALL_VERBS,
    subresources: &["status"],
};

pub(crate) const DEPLOYMENT: Resource = Resource {
    group: "apps",
    version: "v1",
    kind: "Deployment",
    plural: "deployments",
    singular: "deployment",
    namespaced: true,
    short_names: &["deploy"],
    verbs: ALL_VERBS,
    subresources: &["status", "scale"],
};

pub(crate) const REPLICASET: Resource = Resource {
    group: "apps",
    version: "v1",
    kind: "ReplicaSet",
    plural: "replicasets",
    singular: "replicaset",
    namespaced: true,
    short_names: &["rs"],
    verbs: ALL_VERBS,
    subresources: &["status", "scale"],
};

pub(crate) const STATEFULSET: Resource = Resource {
    group: "apps",
    version: "v1",
    kind: "StatefulSet",
    plural: "statefulsets",
    singular: "statefulset",
    namespaced: true,
    short_names: &["sts"],
    verbs: ALL_VERBS,
    subresources: &["status", "scale"],
};

pub(crate) const JOB: Resource = Resource {
    group: "batch",
    version: "v1",
    kind: "Job",
    plural: "jobs",
    singular: "job",
    namespaced: true,
    short_names: &[],
    verbs: ALL_VERBS,
    subresources: &["status"],
};

pub(crate) const CRONJOB: Resource = Resource {
    group: "batch",
    version: "v1",
    kind: "CronJob",
    plural: "cronjobs",
    singular: "cronjob",
    namespaced: true,
    short_names: &["cj"],
    verbs: ALL_VERBS,
    subresources: &["status"],
};

pub(crate) const ROLLOUT: Resource = Resource {
    group: "argoproj.io",
    version: "v1alpha1",
    kind: "Rollout",
    plural: "rollouts",
    singular: "rollout",
    namespaced: true,
    short_names: &["ro"],
    verbs: ALL_VERBS,
    subresources: &["status", "scale"],
};

/// The resources served; rollouts only when the Argo CRD is "installed".
#[derive(Debug, Clone)]
pub(crate) struct Catalog {
    resources: Vec<Resource>,
}

impl Catalog {
    pub(crate) fn new(with_rollouts: bool) -> Catalog {
        let mut resources = vec![
            POD,
            NAMESPACE,
            NODE,
            SECRET,
            SERVICE,
            DEPLOYMENT,
            REPLICASET,
            STATEFULSET,
            JOB,
            CRONJOB,
        ];
        if with_rollouts {
            resources.push(ROLLOUT);
        }
        Catalog { resources }
    }

    /// The resource at `group`/`version` with this plural name.
    pub(crate) fn find(&self, group: &str, version: &str, plural: &str) -> Option<Resource> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .copied()
    }

    /// The resource of this apiVersion and kind (for seeding).
    pub(crate) fn by_kind(&self, api_version: &str, kind: &str) -> Option<Resource> {
        self.resources
            .iter()
            .find(|r| r.api_version() == api_version && r.kind == kind)
            .copied()
    }

    fn group_versions(&self) -> Vec<(&'static str, &'static str)> {
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for resource in &self.resources {
            if !resource.group.is_empty() && !seen.contains(&(resource.group, resource.version)) {
                seen.push((resource.group, resource.version));
            }
        }
        seen
    }

    /// `GET /api`.
    pub(crate) fn core_versions(&self, server_address: &str) -> Value {
        json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
        })
    }

    /// `GET /apis`.
    pub(crate) fn group_list(&self) -> Value {
        let groups: Vec<Value> = self
            .group_versions()
            .into_iter()
            .map(|(group, version)| {
                let group_version = json!({"groupVersion": format!("{group}/{version}"), "version": version});
                json!({"name": group, "versions": [group_version.clone()], "preferredVersion": group_version})
            })
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    /// `GET /apis/GROUP`.
    pub(crate) fn group(&self, group: &str) -> Option<Value> {
        let (_, version) = self
            .group_versions()
            .into_iter()
            .find(|(name, _)| *name == group)?;
        let group_version =
            json!({"groupVersion": format!("{group}/{version}"), "version": version});
        Some(json!({
            "kind": "APIGroup", "apiVersion": "v1", "name": group,
            "versions": [group_version.clone()], "preferredVersion": group_version,
        }))
    }

    /// `GET /api/v1` or `GET /apis/GROUP/VERSION`.
    pub(crate) fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let members: Vec<&Resource> = self
            .resources
            .iter()
            .filter(|r| r.group == group && r.version == version)
            .collect();
        if members.is_empty() {
            return None;
        }
        let mut resources = Vec::new();
        for resource in members {
            let mut entry = json!({
                "name": resource.plural,
                "singularName": resource.singular,
                "namespaced": resource.namespaced,
                "kind": resource.kind,
                "verbs": resource.verbs,
            });
            if !resource.short_names.is_empty() {
                entry["shortNames"] = json!(resource.short_names);
            }
            if resource.namespaced && resource.plural != "secrets" {
                entry["categories"] = json!(["all"]);
            }
            resources.push(entry);
            for sub in resource.subresources {
                let (kind, verbs): (&str, &[&str]) = match *sub {
                    "portforward" => ("PodPortForwardOptions", &["create", "get"]),
                    "log" => ("Pod", &["get"]),
                    "scale" => ("Scale", &["get", "patch", "update"]),
                    _ => (resource.kind, &["get", "patch", "update"]),
                };
                resources.push(json!({
                    "name": format!("{}/{}", resource.plural, sub),
                    "singularName": "",
                    "namespaced": resource.namespaced,
                    "kind": kind,
                    "verbs": verbs,
                }));
            }
        }
        let group_version = if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        };
        Some(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": resources,
        }))
    }
}
