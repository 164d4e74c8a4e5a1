//! Sessions for Kubernetes targets: resolve the target, run the agent next to it (see
//! `mirrord-kube`), and start an intproxy that owns the port-forward to the agent (`mirrord exec`
//! replaces itself with the user's command, so the port-forward cannot live in this process).
//! Targetless sessions run here too when a cluster is configured: the agent gets a pod of its own
//! in the namespace, so outgoing connections and DNS go through the cluster's network. None of it
//! needs root on the user's machine.

use std::path::PathBuf;

use mirrord_config::ResolvedConfig;
use mirrord_config::resolved::Target;
use mirrord_kube::{
    Cluster, KubeError, KubeSettings, ResolvedTarget, TargetPath, resolve_with_replicas,
    spawn_agent,
};

use crate::intproxy::{AgentEndpoint, start_intproxy};
use crate::{Session, SessionError, SessionProcesses, logs, new_token};
use mirrord_kube::{
    AgentPod, CopySession, copy_target, end_copy, grant_undo, hand_copy_to_job, revoke_undo,
};

/// A runtime for one blocking call into `mirrord-kube`.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, KubeError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| KubeError::Client(format!("cannot start the async runtime: {e}")))
}

fn session_error(error: KubeError) -> SessionError {
    let message = match error.help() {
        Some(help) => format!("{error}\n  help: {help}"),
        None => error.to_string(),
    };
    SessionError::Kubernetes(message)
}

/// Whether a targetless session of `config` runs its agent in the cluster (a kubeconfig or an
/// in-cluster environment is there); without one it runs on this machine.
pub(crate) fn configured(config: &ResolvedConfig) -> bool {
    KubeSettings::from_config(config).cluster_configured()
}

/// Starts a session for a Kubernetes target, or a targetless one in the cluster.
pub(crate) fn start(
    config: &ResolvedConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<Session, SessionError> {
    let path = match &config.target {
        Target::Targetless => None,
        target => Some(TargetPath::from_target(target).ok_or_else(|| {
            SessionError::Kubernetes(format!("{target} is not a Kubernetes target"))
        })?),
    };
    let settings = KubeSettings::from_config(config);
    let token = new_token()?;
    let token_text = token.to_string();
    let logs = logs::SessionLogs::create()?;
    // Names the agent's pod, Secret and labels: random, never derived from the token.
    let session_id = format!("{}-{}", std::process::id(), &new_token()?.to_string()[..8]);
    let mut notices = Vec::new();
    let (agent, copy) = runtime()
        .and_then(|runtime| {
            runtime.block_on(async {
                progress("connecting to the cluster");
                let cluster = Cluster::connect(&settings).await?;
                let target = match &path {
                    None => {
                        let namespace = cluster.namespace(config.target_namespace.as_deref());
                        progress(&format!(
                            "targetless: the agent runs in a pod of its own in namespace {namespace}"
                        ));
                        ResolvedTarget::targetless(namespace)
                    }
                    Some(path) => {
                        progress(&format!("resolving {path}"));
                        let resolved = resolve_with_replicas(
                            &cluster,
                            config.target_namespace.as_deref(),
                            path,
                        )
                        .await?;
                        // The copy has none of the workload's labels: no Service sends it
                        // anything, whatever the replica count, so there is no share of the
                        // traffic to warn about (with `scale_down` the others are gone too).
                        if !config.feature.copy_target.enabled {
                            notices.extend(resolved.replica_notice());
                        }
                        let target = resolved.target;
                        progress(&format!(
                            "target: container {} of pod {}/{} on node {}",
                            target.container_name,
                            target.namespace,
                            target.pod_name,
                            target.node_name.as_deref().unwrap_or("?")
                        ));
                        target
                    }
                };
                let agent = AgentStart {
                    config,
                    token: &token_text,
                    session_id: &session_id,
                };
                agent
                    .run(&cluster, path.as_ref(), target, &mut notices, progress)
                    .await
            })
        })
        .map_err(session_error)?;

    progress("starting the internal proxy (port-forward to the agent)");
    let intproxy = start_intproxy(
        config,
        &logs,
        &token,
        AgentEndpoint::Pod {
            pod: &agent,
            settings: &settings,
            copy: copy.as_ref(),
        },
    )?;
    Ok(Session {
        token,
        intproxy_addr: intproxy.addr,
        // The agent runs in the cluster: nothing to pass descriptors over.
        agent_fd_socket: None,
        target_pid: None,
        agent_log: PathBuf::from(format!(
            "`kubectl logs -n {} {}`",
            agent.namespace, agent.pod_name
        )),
        intproxy_log: intproxy.log,
        processes: SessionProcesses {
            agent: None,
            intproxy: Some(intproxy.process),
        },
        notices,
    })
}

/// What starting the agent needs besides the cluster and the target.
struct AgentStart<'a> {
    config: &'a ResolvedConfig,
    token: &'a str,
    session_id: &'a str,
}

impl AgentStart<'_> {
    /// Starts the agent next to `target`, or, with `feature.copy_target`, next to a copy of its
    /// pod made first (undone again if the agent cannot start).
    async fn run(
        &self,
        cluster: &Cluster,
        path: Option<&TargetPath>,
        target: ResolvedTarget,
        notices: &mut Vec<String>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(AgentPod, Option<CopySession>), KubeError> {
        let copy_config = &self.config.feature.copy_target;
        let (target, copy) = match path {
            Some(path) if copy_config.enabled => {
                let timeout =
                    std::time::Duration::from_secs(self.config.agent.startup_timeout.max(1));
                let (copy_target, copy) = copy_target(
                    cluster,
                    copy_config,
                    path,
                    &target,
                    self.session_id,
                    timeout,
                    progress,
                )
                .await?;
                (copy_target, Some(copy))
            }
            _ => (target, None),
        };
        // The agent undoes the copy itself when its session ends, so that it is undone even when
        // every mirrord process here is killed; the intproxy still does it too (fast path).
        let undo = match &copy {
            Some(copy) => match grant_undo(cluster, &self.config.agent, copy).await {
                Ok(()) => Some(copy),
                Err(error) => {
                    notices.push(format!(
                        "the agent cannot undo the copy of the target itself ({}): the workload \
                         will be restored only by this session's internal proxy",
                        error.to_string().lines().next().unwrap_or_default()
                    ));
                    None
                }
            },
            None => None,
        };
        let agent = spawn_agent(
            cluster,
            self.config,
            &target,
            self.token,
            self.session_id,
            undo,
            progress,
        )
        .await;
        match (&agent, &copy) {
            (Ok(_), Some(copy)) => {
                let job_namespace = self
                    .config
                    .agent
                    .namespace
                    .as_deref()
                    .unwrap_or(&target.namespace);
                let job = format!("mirrord-agent-{}", self.session_id);
                // The owner is what removes the copy if the intproxy is killed too.
                if let Err(error) = hand_copy_to_job(cluster, copy, job_namespace, &job).await {
                    end_copy(cluster, copy).await;
                    return Err(KubeError::Client(format!(
                        "cannot make the agent Job own the copy of the target: {error}"
                    )));
                }
            }
            (Err(_), Some(copy)) => {
                end_copy(cluster, copy).await;
                if undo.is_some() {
                    revoke_undo(cluster, copy).await;
                }
            }
            _ => {}
        }
        Ok((agent?, copy))
    }
}
