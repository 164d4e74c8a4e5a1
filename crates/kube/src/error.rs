//! What can go wrong talking to a cluster, worded for the user: each error names what was being
//! done, and [`KubeError::help`] says how to fix what the user can fix.

/// Errors from Kubernetes operations.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// No kubeconfig and not inside a cluster.
    #[error(
        "no Kubernetes cluster is configured (looked at {looked_at}, and not running inside a cluster)"
    )]
    NoCluster {
        /// Where a kubeconfig was looked for.
        looked_at: String,
    },
    /// The kubeconfig could not be read or does not name a usable cluster.
    #[error("cannot use the kubeconfig: {0}")]
    Kubeconfig(String),
    /// The client could not be built (TLS setup, bad URL).
    #[error("cannot create the Kubernetes client: {0}")]
    Client(String),
    /// RBAC said no.
    #[error("not allowed to {verb} {resource}{}: {message}", scope(namespace.as_deref()))]
    Forbidden {
        /// The verb (`list`, `create`, …).
        verb: String,
        /// The resource, group-qualified (`jobs.batch`, `pods/portforward`).
        resource: String,
        /// The namespace, for namespaced requests.
        namespace: Option<String>,
        /// The API server's message.
        message: String,
    },
    /// The credentials were refused.
    #[error("the API server refused the credentials while trying to {action} (401 Unauthorized)")]
    Unauthorized {
        /// What was being done.
        action: String,
    },
    /// The target does not exist.
    #[error(
        "{kind} `{name}` not found in namespace `{namespace}`{}",
        did_you_mean(close_matches)
    )]
    TargetNotFound {
        /// `pod`, `deployment`, …
        kind: String,
        /// The name asked for.
        name: String,
        /// Where it was looked for.
        namespace: String,
        /// Existing names of that kind that look like it.
        close_matches: Vec<String>,
    },
    /// The target exists but has no pod that can be a target right now.
    #[error("{target} has no running and ready pod{}", detail(details))]
    NoReadyPod {
        /// The target path.
        target: String,
        /// What the pods look like.
        details: String,
    },
    /// The target path names a container the pod does not have.
    #[error("container `{container}` not found in pod `{pod}` (its containers: {available})")]
    ContainerNotFound {
        /// The container asked for.
        container: String,
        /// The pod.
        pod: String,
        /// The pod's containers, comma-separated.
        available: String,
    },
    /// This kind of target cannot be resolved to a pod here.
    #[error("{0}")]
    UnsupportedTarget(String),
    /// Any other answer of the API server.
    #[error("cannot {action}: {message} ({code} {reason})")]
    Api {
        /// What was being done.
        action: String,
        /// HTTP status.
        code: u16,
        /// The `Status` reason (`NotFound`, `Invalid`, …).
        reason: String,
        /// The API server's message.
        message: String,
    },
    /// The API server could not be reached or answered garbage.
    #[error("cannot {action}: {message}")]
    Connection {
        /// What was being done.
        action: String,
        /// Why.
        message: String,
    },
    /// The agent's pod failed to start.
    #[error("the agent pod {pod} failed: {reason}: {message}")]
    AgentFailed {
        /// `namespace/name`.
        pod: String,
        /// `ErrImagePull`, `Unschedulable`, …
        reason: String,
        /// Kubernetes' message.
        message: String,
    },
    /// The agent did not become ready in time.
    #[error("the agent pod {pod} was not ready within {seconds} s (last seen: {last_state})")]
    AgentTimeout {
        /// `namespace/name`.
        pod: String,
        /// `agent.startup_timeout`.
        seconds: u64,
        /// What the pod looked like last.
        last_state: String,
    },
    /// Port-forwarding to the agent failed.
    #[error("cannot reach the agent through port-forward to {pod}:{port}: {message}")]
    PortForward {
        /// `namespace/name`.
        pod: String,
        /// The agent's port.
        port: u16,
        /// Why.
        message: String,
    },
}

fn scope(namespace: Option<&str>) -> String {
    namespace
        .map(|ns| format!(" in namespace `{ns}`"))
        .unwrap_or_else(|| " at the cluster scope".to_owned())
}

fn did_you_mean(close_matches: &[String]) -> String {
    match close_matches {
        [] => String::new(),
        matches => format!("; did you mean {}?", matches.join(", ")),
    }
}

fn detail(details: &str) -> String {
    if details.is_empty() {
        String::new()
    } else {
        format!(" ({details})")
    }
}

impl KubeError {
    /// What the user can do about it, when there is something.
    pub fn help(&self) -> Option<String> {
        match self {
            KubeError::NoCluster { .. } => Some(
                "point `kubeconfig` in the mirrord config (or $KUBECONFIG) at your cluster's kubeconfig, or use a local target such as `pid/PID` or `sandbox/NAME`".to_owned(),
            ),
            KubeError::Forbidden { verb, resource, namespace, .. } => {
                let (kind, binding, ns_flag) = match namespace {
                    Some(ns) => ("role", "rolebinding", format!(" -n {ns}")),
                    None => ("clusterrole", "clusterrolebinding", String::new()),
                };
                Some(format!(
                    "your Kubernetes user needs permission to {verb} {resource}; ask a cluster admin to grant it, e.g. `kubectl create {kind} mirrord-user --verb={verb} --resource={resource}{ns_flag}` and `kubectl create {binding} mirrord-user --{kind}=mirrord-user --user=YOUR_USER{ns_flag}` (check with `kubectl auth can-i {verb} {resource}{ns_flag}`)"
                ))
            }
            KubeError::Unauthorized { .. } => Some(
                "your kubeconfig credentials are not accepted; log in again (refresh the token) or choose another `kube_context`".to_owned(),
            ),
            KubeError::TargetNotFound { kind, namespace, .. } => Some(format!(
                "run `mirrord ls --namespace {namespace}` to see the targets (or `kubectl get {kind}s -n {namespace}`); set `target.namespace` if it lives elsewhere"
            )),
            KubeError::NoReadyPod { .. } => Some(
                "mirrord needs a running, ready pod of the target; wait for one or pick another target".to_owned(),
            ),
            KubeError::AgentFailed { reason, .. } if reason.contains("Image") => Some(
                "check `agent.image` (and `agent.image_pull_secrets` for a private registry): the node must be able to pull it".to_owned(),
            ),
            KubeError::AgentFailed { reason, .. } if reason == "Unschedulable" => Some(
                "the agent must run on the target's node: check `agent.tolerations`, `agent.node_selector` and `agent.resources`".to_owned(),
            ),
            KubeError::AgentTimeout { .. } => Some(
                "raise `agent.startup_timeout`, or look at the agent pod with `kubectl describe pod`".to_owned(),
            ),
            _ => None,
        }
    }

    /// Classifies an error of the API client for an attempt to `verb` `resource`.
    pub(crate) fn from_api(
        error: kube::Error,
        verb: &str,
        resource: &str,
        namespace: Option<&str>,
    ) -> KubeError {
        let action = match namespace {
            Some(ns) => format!("{verb} {resource} in namespace `{ns}`"),
            None => format!("{verb} {resource}"),
        };
        match error {
            kube::Error::Api(status) => match status.code {
                403 => KubeError::Forbidden {
                    verb: verb.to_owned(),
                    resource: resource.to_owned(),
                    namespace: namespace.map(str::to_owned),
                    message: status.message,
                },
                401 => KubeError::Unauthorized { action },
                code => KubeError::Api {
                    action,
                    code,
                    reason: status.reason,
                    message: status.message,
                },
            },
            other => KubeError::Connection {
                action,
                message: error_chain(&other),
            },
        }
    }

    /// Whether this is the API server saying the object does not exist.
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, KubeError::Api { code: 404, .. })
    }
}

/// An error and its sources, joined with `: `.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
