//! Reaching the agent through the API server's port-forward (WebSocket, `v4.channel.k8s.io`): the
//! returned stream carries the agent protocol like a TCP connection would. The port-forward task
//! lives as long as the stream; when the API server goes away, the stream ends and the caller
//! sees the agent connection close. The agent's pod is watched alongside: once it is being
//! deleted, is gone, or its agent container has terminated, the stream is ended too, without
//! waiting for the node to tear the forwarded connection down (some never do until the next
//! write, which would leave the session's next request waiting for its timeout).

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, WatchEvent, WatchParams};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::client::Cluster;
use crate::error::{KubeError, error_chain};
use crate::spawn::AgentPod;
use crate::spec::AGENT_CONTAINER;

/// Opens a port-forward to the agent and returns its byte stream.
pub async fn connect_agent(
    cluster: &Cluster,
    agent: &AgentPod,
) -> Result<impl AsyncRead + AsyncWrite + Unpin + Send + 'static, KubeError> {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &agent.namespace);
    let mut forwarder = pods
        .portforward(&agent.pod_name, &[agent.port])
        .await
        .map_err(|error| match error {
            kube::Error::Api(_) => {
                KubeError::from_api(error, "create", "pods/portforward", Some(&agent.namespace))
            }
            other => KubeError::PortForward {
                pod: format!("{}/{}", agent.namespace, agent.pod_name),
                port: agent.port,
                message: error_chain(&other),
            },
        })?;
    let stream = forwarder
        .take_stream(agent.port)
        .ok_or_else(|| KubeError::PortForward {
            pod: format!("{}/{}", agent.namespace, agent.pod_name),
            port: agent.port,
            message: "the port-forward has no stream for the port".to_owned(),
        })?;
    let errors = forwarder.take_error(agent.port);
    let name = agent.to_string();
    tokio::spawn(async move {
        if let Some(errors) = errors
            && let Some(message) = errors.await
        {
            tracing::warn!(agent = %name, %message, "port-forward error");
        }
        if let Err(error) = forwarder.join().await {
            tracing::debug!(agent = %name, error = %error_chain(&error), "port-forward ended");
        }
    });
    let (caller_end, mut our_end) = tokio::io::duplex(256 * 1024);
    let name = agent.to_string();
    let pod_name = agent.pod_name.clone();
    tokio::spawn(async move {
        let mut stream = stream;
        tokio::select! {
            result = tokio::io::copy_bidirectional(&mut stream, &mut our_end) => {
                if let Err(error) = result {
                    tracing::debug!(agent = %name, %error, "port-forward stream ended");
                }
            }
            reason = agent_gone(pods, pod_name) => {
                tracing::warn!(agent = %name, %reason, "closing the agent connection");
            }
        }
    });
    Ok(caller_end)
}

/// Resolves once the agent's pod is being deleted, is gone, or its agent container terminated,
/// with why; never while the pod cannot be watched (the stream's own end covers that).
async fn agent_gone(pods: Api<Pod>, name: String) -> String {
    let params = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(290);
    let mut version = "0".to_owned();
    loop {
        let Ok(events) = pods.watch(&params, &version).await else {
            return std::future::pending().await;
        };
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            match event {
                Ok(WatchEvent::Added(pod) | WatchEvent::Modified(pod)) => {
                    version = pod.metadata.resource_version.clone().unwrap_or(version);
                    if let Some(reason) = agent_stopped(&pod) {
                        return reason;
                    }
                }
                Ok(WatchEvent::Deleted(_)) => return format!("the agent's pod {name} was deleted"),
                Ok(WatchEvent::Bookmark(bookmark)) => version = bookmark.metadata.resource_version,
                Ok(WatchEvent::Error(_)) | Err(_) => {
                    version = "0".to_owned();
                    break;
                }
            }
        }
    }
}

/// Why the agent in `pod` no longer runs, if it does not.
fn agent_stopped(pod: &Pod) -> Option<String> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    if pod.metadata.deletion_timestamp.is_some() {
        return Some(format!("the agent's pod {name} is being deleted"));
    }
    let status = pod.status.as_ref()?;
    status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.ephemeral_container_statuses.iter().flatten())
        .filter(|c| c.name == AGENT_CONTAINER || c.name.starts_with("mirrord-agent-"))
        .find(|c| c.state.as_ref().is_some_and(|s| s.terminated.is_some()))
        .map(|c| {
            format!(
                "the agent container {} of pod {name} has terminated",
                c.name
            )
        })
}
