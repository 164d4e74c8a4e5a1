//! Reaching the agent through the API server's port-forward (WebSocket, `v4.channel.k8s.io`): the
//! returned stream carries the agent protocol like a TCP connection would. The port-forward task
//! lives as long as the stream; when the API server goes away, the stream ends and the caller
//! sees the agent connection close.

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::client::Cluster;
use crate::error::{KubeError, error_chain};
use crate::spawn::AgentPod;

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
    Ok(stream)
}
