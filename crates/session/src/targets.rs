//! Listing targets, shared by `mirrord ls` and the IDE sidecar's picker: the cluster's when one is
//! configured, else the sandbox pods on this machine ([`sandbox_targets`], the one place a sandbox
//! becomes a target).

use mirrord_config::ResolvedConfig;
use mirrord_kube::{Cluster, KubeError, KubeSettings, ListOptions, TargetEntry, TargetListing};

use mirrord_sandbox::SandboxInfo;

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

/// A sandbox pod on this machine as a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxTarget {
    /// As `mirrord ls` lists it: `sandbox/NAME`, kind `sandbox`, no namespace, available while
    /// every process of the pod runs.
    pub entry: TargetEntry,
    /// What it is, for a picker: the pod's address and its target process.
    pub detail: String,
}

/// The sandbox pods on this machine. No sandbox state yet (or none readable without root) means
/// no sandboxes.
pub fn sandbox_targets() -> Vec<SandboxTarget> {
    mirrord_sandbox::Sandbox::list()
        .unwrap_or_default()
        .iter()
        .map(sandbox_target)
        .collect()
}

fn sandbox_target(sandbox: &SandboxInfo) -> SandboxTarget {
    SandboxTarget {
        entry: TargetEntry {
            path: format!("sandbox/{}", sandbox.name),
            kind: "sandbox".to_owned(),
            namespace: String::new(),
            available: sandbox.is_running(),
        },
        detail: format!(
            "sandbox pod at {} (process {})",
            sandbox.sandbox_ip, sandbox.target_pid
        ),
    }
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
        let targets = sandbox_targets()
            .into_iter()
            .map(|sandbox| sandbox.entry)
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

#[cfg(test)]
mod tests {
    use mirrord_sandbox::SandboxPids;

    use super::*;

    #[test]
    fn a_sandbox_is_listed_by_name_with_its_address_and_process() {
        let own = std::process::id();
        let mut sandbox = SandboxInfo {
            name: "demo".into(),
            target: format!("pid/{own}"),
            target_pid: own,
            slot: 3,
            netns: "mirrord-sb-demo".into(),
            db_netns: "mirrord-sb-demo-db".into(),
            host_interface: "msb3".into(),
            host_ip: [10, 241, 3, 1].into(),
            sandbox_ip: [10, 241, 3, 2].into(),
            db_ip: [10, 242, 3, 2].into(),
            http_port: 8080,
            echo_port: 7,
            dns_server: "10.241.3.2:53".parse().unwrap(),
            search_domain: "demo.svc.cluster.local".into(),
            dns_records: Default::default(),
            hostname: "demo".into(),
            files: Vec::new(),
            env: Default::default(),
            pids: SandboxPids {
                http: own,
                dns: own,
                tcp_echo: own,
                udp_echo: own,
            },
            state_dir: "/run/mirrord/sandbox/demo".into(),
        };
        assert_eq!(
            sandbox_target(&sandbox),
            SandboxTarget {
                entry: TargetEntry {
                    path: "sandbox/demo".into(),
                    kind: "sandbox".into(),
                    namespace: String::new(),
                    available: true,
                },
                detail: format!("sandbox pod at 10.241.3.2 (process {own})"),
            }
        );
        // A pid above the kernel's limit (4194304) never runs.
        sandbox.pids.dns = 4_194_305;
        assert!(!sandbox_target(&sandbox).entry.available, "a dead service");
    }
}
