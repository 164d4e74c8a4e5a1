//! `target`: which pod, workload, local process or sandbox the local process runs against.

#[cfg(feature = "files")]
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// The regular expression every target path must match (also published in the schema).
pub const TARGET_PATH_PATTERN: &str = concat!(
    r"^(targetless",
    r"|(pod|podname|deployment|rollout|statefulset|replicaset|job|cronjob|service)/[a-z0-9]([-a-z0-9.]*[a-z0-9])?(/container/[a-z0-9]([-a-z0-9]*[a-z0-9])?)?",
    r"|pid/[1-9][0-9]*",
    r"|sandbox/[a-z0-9]([-a-z0-9]*[a-z0-9])?",
    r")$"
);

/// The message shown when a target path does not match [`TARGET_PATH_PATTERN`].
pub const TARGET_PATH_HELP: &str = "invalid target path; expected `targetless`, \
`KIND/NAME[/container/CONTAINER]` with KIND one of pod, deployment, rollout, statefulset, \
replicaset, job, cronjob, service, or a local target `pid/PID` or `sandbox/NAME`";

/// `target` as written: a path, or a path with a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(untagged)]
pub enum TargetField {
    /// A target path, e.g. `"pod/api-7f9c"` or `"deployment/api/container/main"`.
    Path(TargetPath),
    /// A target path with the namespace it lives in.
    Object(TargetObject),
}

/// `target` as an object.
///
/// Example: `{ "path": "deployment/api", "namespace": "staging" }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TargetObject {
    /// The target path; see `target`. Default: `targetless`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<TargetPath>,

    /// The Kubernetes namespace the target lives in (for `targetless`, where remote networking
    /// happens). Default: the kubeconfig context's namespace. Example: `"staging"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A target path string such as `pod/api-7f9c/container/main`, `pid/4242` or `sandbox/demo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TargetPath(pub String);

#[cfg(feature = "files")]
impl JsonSchema for TargetPath {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TargetPath".into()
    }

    fn json_schema(_generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A target path: `targetless`, `pod/NAME[/container/C]`, `deployment/NAME[/container/C]`, `rollout/…`, `statefulset/…`, `replicaset/…`, `job/…`, `cronjob/…`, `service/…`, a local process `pid/PID`, or a built-in sandbox pod `sandbox/NAME`.",
            "pattern": TARGET_PATH_PATTERN,
            "patternErrorMessage": TARGET_PATH_HELP,
            "examples": ["targetless", "pod/api-7f9c", "deployment/api/container/main", "sandbox/demo", "pid/4242"]
        })
    }
}
