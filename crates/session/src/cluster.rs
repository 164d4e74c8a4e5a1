//! Sessions for Kubernetes targets: resolve the target, run the agent next to it (see
//! `mirrord-kube`), and start an intproxy that owns the port-forward to the agent (`mirrord exec`
//! replaces itself with the user's command, so the port-forward cannot live in this process).

use std::path::PathBuf;

use mirrord_config::ResolvedConfig;
use mirrord_kube::{Cluster, KubeError, KubeSettings, TargetPath, resolve_target, spawn_agent};

use crate::intproxy::{AgentEndpoint, start_intproxy};
use crate::{Session, SessionError, SessionProcesses, logs, new_token};

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

/// Starts a session for a Kubernetes target.
pub(crate) fn start(
    config: &ResolvedConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<Session, SessionError> {
    let Some(path) = TargetPath::from_target(&config.target) else {
        return Err(SessionError::Kubernetes(format!(
            "{} is not a Kubernetes target",
            config.target
        )));
    };
    let settings = KubeSettings::from_config(config);
    let token = new_token()?;
    let token_text = token.to_string();
    let logs = logs::SessionLogs::create()?;
    // Names the agent's pod, Secret and labels: random, never derived from the token.
    let session_id = format!("{}-{}", std::process::id(), &new_token()?.to_string()[..8]);
    let agent = runtime()
        .and_then(|runtime| {
            runtime.block_on(async {
                progress("connecting to the cluster");
                let cluster = Cluster::connect(&settings).await?;
                progress(&format!("resolving {path}"));
                let target =
                    resolve_target(&cluster, config.target_namespace.as_deref(), &path).await?;
                progress(&format!(
                    "target: container {} of pod {}/{} on node {}",
                    target.container_name,
                    target.namespace,
                    target.pod_name,
                    target.node_name.as_deref().unwrap_or("?")
                ));
                spawn_agent(
                    &cluster,
                    config,
                    &target,
                    &token_text,
                    &session_id,
                    progress,
                )
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
    })
}
