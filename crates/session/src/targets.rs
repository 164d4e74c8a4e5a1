//! Listing targets, shared by `mirrord ls` and the IDE sidecar's picker: the cluster's when one is
//! configured, else the sandbox pods on this machine.

use mirrord_config::ResolvedConfig;
use mirrord_kube::{Cluster, KubeError, KubeSettings, ListOptions, TargetEntry, TargetListing};

use crate::cluster::runtime;

/// What `mirrord ls` shows: the listing, and a note for stderr when only local targets are
/// listed because no cluster is configured.
#[derive(Debug, Clone)]
pub struct ListedTargets {
    /// The targets.
    pub listing: TargetListing,
    /// Why only local targets are listed, if that is the case.
    pub note: Option<String>,
}

/// Lists targets: the cluster's (in `options.namespace`, else the config's
/// `target.namespace`, else the kubeconfig's), or, when no cluster is configured, the running
/// sandbox pods. Never fails just because there is no kubeconfig.
pub fn list_targets(
    config: &ResolvedConfig,
    mut options: ListOptions,
) -> Result<ListedTargets, KubeError> {
    let settings = KubeSettings::from_config(config);
    if !settings.cluster_configured() {
        let targets = mirrord_sandbox::Sandbox::list()
            .unwrap_or_default()
            .into_iter()
            .map(|sandbox| TargetEntry {
                path: format!("sandbox/{}", sandbox.name),
                kind: "sandbox".to_owned(),
                namespace: String::new(),
                available: sandbox.is_running(),
            })
            .collect();
        return Ok(ListedTargets {
            listing: TargetListing {
                targets,
                ..TargetListing::default()
            },
            note: Some(
                "no Kubernetes cluster is configured (no kubeconfig found); listing local targets only"
                    .to_owned(),
            ),
        });
    }
    if options.namespace.is_none() {
        options.namespace = config.target_namespace.clone();
    }
    let listing = runtime()?.block_on(async {
        let cluster = Cluster::connect(&settings).await?;
        mirrord_kube::list_targets(&cluster, &options).await
    })?;
    Ok(ListedTargets {
        listing,
        note: None,
    })
}
