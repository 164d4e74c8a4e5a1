//! Undoing `copy_target` from inside the cluster: when the agent of a copied target leaves (its
//! client is gone, no client came, the target ended, or it was told to end), it restores the
//! workload it was told was scaled down (`--scaled-down KIND/NAME`) and deletes the copy pod it
//! runs against (`--copy-pod NAMESPACE/POD`), so the session is undone even when every mirrord
//! process on the user's machine was killed. The steps are `mirrord-kube`'s own (`restore.rs`,
//! included by path), idempotent and conditional, so the session's internal proxy doing the same
//! at the same time is harmless.
//!
//! The agent reaches the API server the in-cluster way: `KUBERNETES_SERVICE_HOST`/`_PORT` and
//! the pod's service account token and CA (`/var/run/secrets/kubernetes.io/serviceaccount`, or
//! the directory in `$MIRRORD_AGENT_SERVICE_ACCOUNT_DIR`, which only the test cluster's node
//! runner sets: it runs agents as host processes and cannot mount the standard path). The session
//! grants the service account exactly these steps (`mirrord_kube::grant_undo`).

use std::path::PathBuf;
use std::time::Duration;

#[allow(
    dead_code,
    unreachable_pub,
    reason = "shared with mirrord-kube, which uses and exports all of it; the agent needs part"
)]
#[path = "../../crates/kube/src/restore.rs"]
mod restore;

/// Where a kubelet mounts the pod's service account credentials.
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Overrides [`SERVICE_ACCOUNT_DIR`] (the test cluster's node runner only).
const SERVICE_ACCOUNT_DIR_ENV: &str = "MIRRORD_AGENT_SERVICE_ACCOUNT_DIR";
/// The most the whole undo may take; the agent exits after it either way.
const UNDO_LIMIT: Duration = Duration::from_secs(30);

/// What to undo, from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CopyUndo {
    namespace: String,
    copy_pod: String,
    /// `(kind, name)` of the scaled-down workload.
    scaled_down: Option<(String, String)>,
    session_id: String,
}

impl CopyUndo {
    /// From `--copy-pod NAMESPACE/POD`, `--scaled-down KIND/NAME` and `--session-id ID`.
    pub(crate) fn from_args(
        copy_pod: Option<&str>,
        scaled_down: Option<&str>,
        session_id: Option<&str>,
    ) -> Result<Option<CopyUndo>, String> {
        let Some(copy_pod) = copy_pod else {
            return Ok(None);
        };
        let (namespace, pod) = copy_pod
            .split_once('/')
            .filter(|(ns, pod)| !ns.is_empty() && !pod.is_empty())
            .ok_or_else(|| format!("--copy-pod `{copy_pod}` is not NAMESPACE/POD"))?;
        let scaled_down = scaled_down
            .map(|workload| {
                workload
                    .split_once('/')
                    .filter(|(kind, name)| {
                        restore::workload_resource(kind).is_some() && !name.is_empty()
                    })
                    .map(|(kind, name)| (kind.to_owned(), name.to_owned()))
                    .ok_or_else(|| {
                        format!(
                            "--scaled-down `{workload}` is not deployment/NAME or statefulset/NAME"
                        )
                    })
            })
            .transpose()?;
        Ok(Some(CopyUndo {
            namespace: namespace.to_owned(),
            copy_pod: pod.to_owned(),
            scaled_down,
            session_id: session_id.unwrap_or_default().to_owned(),
        }))
    }

    /// Undoes the session, logging each step; never fails (the agent is leaving anyway).
    pub(crate) fn run(&self) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                tracing::warn!(%error, "cannot undo the copy of the target: no runtime");
                return;
            }
        };
        runtime.block_on(async {
            if tokio::time::timeout(UNDO_LIMIT, self.undo()).await.is_err() {
                tracing::warn!(
                    seconds = UNDO_LIMIT.as_secs(),
                    "undoing the copy of the target took too long; left to the internal proxy and the garbage collector"
                );
            }
        });
    }

    async fn undo(&self) {
        let client = match in_cluster_client().await {
            Ok(client) => client,
            Err(error) => {
                tracing::warn!(%error, "cannot reach the API server to undo the copy of the target");
                return;
            }
        };
        if let Some((kind, name)) = &self.scaled_down {
            match restore::restore_replicas(&client, &self.namespace, kind, name, &self.session_id)
                .await
            {
                Ok(restore::Restored::Replicas(replicas)) => {
                    tracing::info!(%kind, %name, replicas, "replicas restored");
                }
                Ok(restore::Restored::LeftAlone(why)) => {
                    tracing::info!(%kind, %name, why, "replicas left alone");
                }
                Err(error) => {
                    tracing::warn!(%kind, %name, %error, "cannot restore the replicas");
                }
            }
        }
        match restore::delete_copy(&client, &self.namespace, &self.copy_pod).await {
            Ok(true) => tracing::info!(pod = %self.copy_pod, "copy of the target deleted"),
            Ok(false) => tracing::info!(pod = %self.copy_pod, "copy of the target already gone"),
            Err(error) => tracing::warn!(pod = %self.copy_pod, %error, "cannot delete the copy"),
        }
    }
}

/// Resolves on SIGTERM when `enabled`; never otherwise (and then SIGTERM keeps its default
/// action: no handler is installed).
pub(crate) async fn terminated(enabled: bool) {
    if !enabled {
        return std::future::pending().await;
    }
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut terminate) => {
            terminate.recv().await;
            tracing::info!("terminated; ending the session");
        }
        Err(error) => {
            tracing::warn!(%error, "cannot handle SIGTERM");
            std::future::pending().await
        }
    }
}

/// A client for the API server from the pod's environment and service account.
async fn in_cluster_client() -> Result<kube::Client, String> {
    let dir = std::env::var_os(SERVICE_ACCOUNT_DIR_ENV)
        .map_or_else(|| PathBuf::from(SERVICE_ACCOUNT_DIR), PathBuf::from);
    let host = std::env::var("KUBERNETES_SERVICE_HOST")
        .map_err(|_| "KUBERNETES_SERVICE_HOST is not set".to_owned())?;
    let port = std::env::var("KUBERNETES_SERVICE_PORT")
        .map_err(|_| "KUBERNETES_SERVICE_PORT is not set".to_owned())?;
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    for file in ["token", "ca.crt"] {
        if !dir.join(file).exists() {
            return Err(format!("{} does not exist", dir.join(file).display()));
        }
    }
    // A kubeconfig in memory, so the token file is re-read as it is rotated (as in-cluster
    // clients do).
    let kubeconfig: kube::config::Kubeconfig = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "in-cluster", "cluster": {
            "server": format!("https://{host}:{port}"),
            "certificate-authority": dir.join("ca.crt"),
        }}],
        "users": [{"name": "agent", "user": {"tokenFile": dir.join("token")}}],
        "contexts": [{"name": "in-cluster", "context": {"cluster": "in-cluster", "user": "agent"}}],
        "current-context": "in-cluster",
    }))
    .map_err(|error| format!("cannot make the in-cluster configuration: {error}"))?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .map_err(|error| format!("cannot load the in-cluster configuration: {error}"))?;
    kube::Client::try_from(config).map_err(|error| format!("cannot make the client: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_to_undo_from_the_command_line() {
        assert_eq!(CopyUndo::from_args(None, None, None), Ok(None));
        let undo = CopyUndo::from_args(
            Some("shop/mirrord-copy-1-ab"),
            Some("deployment/api"),
            Some("1-ab"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(undo.namespace, "shop");
        assert_eq!(undo.copy_pod, "mirrord-copy-1-ab");
        assert_eq!(
            undo.scaled_down,
            Some(("deployment".to_owned(), "api".to_owned()))
        );
        assert_eq!(undo.session_id, "1-ab");
        assert!(CopyUndo::from_args(Some("nopod"), None, None).is_err());
        assert!(CopyUndo::from_args(Some("a/b"), Some("daemonset/x"), None).is_err());
    }

    /// The decision is the one `mirrord-kube` makes: only this session's mark, only at zero.
    #[test]
    fn restores_only_what_this_session_scaled_down() {
        let object = |by: &str, replicas: i64| -> kube::api::DynamicObject {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "api", "resourceVersion": "7", "annotations": {
                    restore::SCALED_DOWN_ANNOTATION: "3", restore::SCALED_DOWN_BY_ANNOTATION: by}},
                "spec": {"replicas": replicas},
            }))
            .unwrap()
        };
        let patch = restore::restore_patch(&object("1-ab", 0), "1-ab").unwrap();
        assert_eq!(patch["spec"]["replicas"], 3);
        assert_eq!(patch["metadata"]["resourceVersion"], "7");
        assert!(restore::restore_patch(&object("2-cd", 0), "1-ab").is_err());
        let scaled_by_user = restore::restore_patch(&object("1-ab", 2), "1-ab").unwrap_err();
        assert!(scaled_by_user.contains("changed to 2"), "{scaled_by_user}");
    }
}
