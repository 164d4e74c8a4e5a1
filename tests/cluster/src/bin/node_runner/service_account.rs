//! What a kubelet gives a pod that mounts its service account's token: the token (asked for with
//! the TokenRequest API, bound to the pod), the cluster's CA and the namespace, and the
//! `KUBERNETES_SERVICE_HOST`/`_PORT` variables. A kubelet mounts the files at
//! `/var/run/secrets/kubernetes.io/serviceaccount`; the runner runs containers as processes of
//! this machine and cannot mount over that path for each, so it writes them to a directory of
//! the pod's and names it in `$MIRRORD_AGENT_SERVICE_ACCOUNT_DIR`, which the agent reads instead
//! of the standard path (only this runner sets it).

use std::path::{Path, PathBuf};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::config::Kubeconfig;

/// The variable naming the directory that stands for the standard mount.
pub(crate) const SERVICE_ACCOUNT_DIR_ENV: &str = "MIRRORD_AGENT_SERVICE_ACCOUNT_DIR";

/// The API server's address and CA, as the runner's kubeconfig names them.
#[derive(Debug, Clone)]
pub(crate) struct ApiServer {
    host: String,
    port: String,
    ca: PathBuf,
}

impl ApiServer {
    /// From the kubeconfig's first cluster.
    pub(crate) fn from_kubeconfig(path: &Path) -> Result<ApiServer, String> {
        let kubeconfig = Kubeconfig::read_from(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let cluster = kubeconfig
            .clusters
            .first()
            .and_then(|c| c.cluster.as_ref())
            .ok_or("the kubeconfig has no cluster")?;
        let server = cluster
            .server
            .as_deref()
            .ok_or("the cluster has no server")?;
        let authority = server
            .strip_prefix("https://")
            .ok_or("the server is not https")?
            .trim_end_matches('/');
        let (host, port) = authority.rsplit_once(':').ok_or("the server has no port")?;
        let ca = cluster
            .certificate_authority
            .as_deref()
            .ok_or("the cluster has no certificate-authority file")?;
        Ok(ApiServer {
            host: host.to_owned(),
            port: port.to_owned(),
            ca: PathBuf::from(ca),
        })
    }
}

/// The environment that gives `pod` its service account, with the files written under
/// `dir`; empty when the pod does not mount a token (`automountServiceAccountToken: false`).
pub(crate) async fn environment(
    client: &kube::Client,
    api: &ApiServer,
    pod: &Pod,
    dir: &Path,
) -> Result<Vec<(String, String)>, String> {
    let spec = pod.spec.clone().unwrap_or_default();
    if spec.automount_service_account_token == Some(false) {
        return Ok(Vec::new());
    }
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let account = spec
        .service_account_name
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(3600),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("Pod".to_owned()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..TokenRequest::default()
    };
    let token = Api::<ServiceAccount>::namespaced(client.clone(), &namespace)
        .create_token_request(&account, &PostParams::default(), &request)
        .await
        .map_err(|e| format!("cannot get a token for service account \"{account}\": {e}"))?
        .status
        .map(|status| status.token)
        .ok_or_else(|| format!("no token for service account \"{account}\""))?;
    let ca =
        std::fs::read(&api.ca).map_err(|e| format!("cannot read {}: {e}", api.ca.display()))?;
    let write = |name: &str, bytes: &[u8]| {
        std::fs::write(dir.join(name), bytes)
            .map_err(|e| format!("cannot write {}: {e}", dir.join(name).display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    write("token", token.as_bytes())?;
    write("ca.crt", &ca)?;
    write("namespace", namespace.as_bytes())?;
    Ok(vec![
        ("KUBERNETES_SERVICE_HOST".to_owned(), api.host.clone()),
        ("KUBERNETES_SERVICE_PORT".to_owned(), api.port.clone()),
        (
            SERVICE_ACCOUNT_DIR_ENV.to_owned(),
            dir.display().to_string(),
        ),
    ])
}
