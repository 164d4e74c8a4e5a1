//! Reaching the agent through the API server's port-forward (WebSocket, `v4.channel.k8s.io`): the
//! returned stream carries the agent protocol like a TCP connection would. We speak the
//! port-forward's WebSocket protocol ourselves (see [`relay`]) rather than through kube-rs's
//! forwarder, to choose how the bytes are cut into messages. The relay lives as long as the
//! stream; when the API server goes away, the stream ends and the caller sees the agent
//! connection close. The agent's pod is watched alongside: once it is being deleted, is gone, or
//! its agent container has terminated, the stream is ended too, without waiting for the node to
//! tear the forwarded connection down (some never do until the next write, which would leave the
//! session's next request waiting for its timeout).

use futures_util::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::Resource;
use kube::api::{Api, WatchEvent, WatchParams};
use kube::core::Request;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use crate::client::Cluster;
use crate::error::{KubeError, error_chain};
use crate::spawn::AgentPod;
use crate::spec::AGENT_CONTAINER;

/// The most bytes one WebSocket message carries towards the agent.
const MESSAGE_LEN: usize = 256 * 1024;
/// The port's data channel and error channel in `v4.channel.k8s.io`.
const DATA_CHANNEL: u8 = 0;
const ERROR_CHANNEL: u8 = 1;

/// Opens a port-forward to the agent and returns its byte stream.
pub async fn connect_agent(
    cluster: &Cluster,
    agent: &AgentPod,
) -> Result<impl AsyncRead + AsyncWrite + Unpin + Send + 'static, KubeError> {
    let failed = |message: String| KubeError::PortForward {
        pod: format!("{}/{}", agent.namespace, agent.pod_name),
        port: agent.port,
        message,
    };
    let request = Request::new(Pod::url_path(&(), Some(&agent.namespace)))
        .portforward(&agent.pod_name, &[agent.port])
        .map_err(|error| failed(error_chain(&error)))?;
    let connection = cluster
        .client
        .connect(request)
        .await
        .map_err(|error| match error {
            kube::Error::Api(_) => {
                KubeError::from_api(error, "create", "pods/portforward", Some(&agent.namespace))
            }
            other => failed(error_chain(&other)),
        })?;
    let websocket = connection.into_stream();
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &agent.namespace);
    let (caller_end, our_end) = tokio::io::duplex(MESSAGE_LEN);
    let name = agent.to_string();
    let pod_name = agent.pod_name.clone();
    tokio::spawn(async move {
        tokio::select! {
            reason = relay(websocket, our_end) => {
                tracing::debug!(agent = %name, %reason, "port-forward ended");
            }
            reason = agent_gone(pods, pod_name) => {
                tracing::warn!(agent = %name, %reason, "closing the agent connection");
            }
        }
    });
    Ok(caller_end)
}

/// Carries the agent connection's bytes between `local` and the port-forward's WebSocket until
/// either ends, and says why it ended.
///
/// The protocol is `v4.channel.k8s.io` with one port: every binary message starts with its
/// channel, 0 for the port's data and 1 for its errors, and each channel's first message is the
/// port number. Towards the agent, each message carries all that the intproxy has written since
/// the last one went out, up to [`MESSAGE_LEN`]: small exchanges leave at once, one message each,
/// and a bulk transfer goes in large messages (kube-rs's own forwarder reads in 4 KiB chunks and
/// sends each as its own message, which split frames and capped bulk uploads).
async fn relay<S>(websocket: WebSocketStream<S>, local: DuplexStream) -> String
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut to_api, mut from_api) = websocket.split();
    let (mut local_read, mut local_write) = tokio::io::split(local);
    let upstream = async {
        let mut buffer = vec![0u8; MESSAGE_LEN + 1];
        loop {
            let read = match local_read.read(&mut buffer[1..]).await {
                Ok(0) => {
                    let _ = to_api.send(Message::Close(None)).await;
                    return "the agent connection was closed on our side".to_owned();
                }
                Ok(read) => read,
                Err(error) => return format!("reading the agent connection failed: {error}"),
            };
            buffer[0] = DATA_CHANNEL;
            let message = Message::binary(buffer[..=read].to_vec());
            if let Err(error) = to_api.send(message).await {
                return format!("sending to the API server failed: {error}");
            }
        }
    };
    let downstream = async {
        // Whether each channel's first message (the port number) has come.
        let mut opened = [false; 2];
        while let Some(message) = from_api.next().await {
            let bytes = match message {
                Ok(Message::Binary(bytes)) => bytes,
                Ok(Message::Close(_)) => break,
                Ok(_) => continue,
                Err(error) => return format!("reading from the API server failed: {error}"),
            };
            let Some((&channel, data)) = bytes.split_first() else {
                continue;
            };
            let Some(seen) = opened.get_mut(usize::from(channel)) else {
                return format!("the port-forward sent a message on unknown channel {channel}");
            };
            if !std::mem::replace(seen, true) {
                continue;
            }
            if channel == ERROR_CHANNEL {
                return format!("port-forward error: {}", String::from_utf8_lossy(data));
            }
            if local_write.write_all(data).await.is_err() {
                return "the agent connection was closed on our side".to_owned();
            }
        }
        "the API server closed the port-forward".to_owned()
    };
    tokio::select! {
        reason = upstream => reason,
        reason = downstream => reason,
    }
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

#[cfg(test)]
mod tests {
    use tokio_tungstenite::tungstenite::protocol::Role;

    use super::*;

    /// A relay over an in-memory WebSocket; returns the caller's end of the agent connection, the
    /// API server's end of the WebSocket and the relay's task. The server has opened both channels.
    async fn relay_pair() -> (
        DuplexStream,
        WebSocketStream<DuplexStream>,
        tokio::task::JoinHandle<String>,
    ) {
        let (client_io, server_io) = tokio::io::duplex(1 << 20);
        let client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
        let mut server = WebSocketStream::from_raw_socket(server_io, Role::Server, None).await;
        let (caller, ours) = tokio::io::duplex(MESSAGE_LEN);
        let task = tokio::spawn(relay(client, ours));
        // Each channel's first message is the port, little-endian (8080).
        for channel in [DATA_CHANNEL, ERROR_CHANNEL] {
            let opening = Message::binary(vec![channel, 0x90, 0x1f]);
            server.send(opening).await.expect("the relay reads");
        }
        (caller, server, task)
    }

    #[tokio::test]
    async fn bytes_cross_both_ways_and_a_burst_leaves_in_large_messages() {
        let (mut caller, mut server, _task) = relay_pair().await;
        server
            .send(Message::binary(b"\0from the agent".to_vec()))
            .await
            .unwrap();
        let mut received = [0u8; 14];
        caller.read_exact(&mut received).await.unwrap();
        // The ports that opened the channels are not part of the stream.
        assert_eq!(&received, b"from the agent");

        let burst: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
        let writer = tokio::spawn({
            let burst = burst.clone();
            async move {
                caller.write_all(&burst).await.unwrap();
                caller
            }
        });
        let (mut sent, mut messages) = (Vec::new(), 0);
        while sent.len() < burst.len() {
            match server.next().await.expect("open").expect("a message") {
                Message::Binary(bytes) => {
                    assert_eq!(bytes[0], DATA_CHANNEL);
                    sent.extend_from_slice(&bytes[1..]);
                    messages += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(sent == burst, "the burst arrived altered");
        // kube-rs's forwarder sent 4 KiB messages: 256 for this burst.
        assert!(messages <= 32, "1 MiB took {messages} messages");
        drop(writer.await.unwrap());
        // The caller's end dropped: the API server is told the port-forward is over.
        match server.next().await {
            Some(Ok(Message::Close(_))) | None => {}
            Some(Ok(other)) => panic!("unexpected {other:?} after the caller left"),
            Some(Err(error)) => panic!("{error}"),
        }
    }

    #[tokio::test]
    async fn an_error_on_the_port_ends_the_stream_with_its_message() {
        let (mut caller, mut server, task) = relay_pair().await;
        let error = Message::binary(b"\x01connection refused".to_vec());
        server.send(error).await.unwrap();
        let mut rest = Vec::new();
        caller.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        let reason = task.await.unwrap();
        assert!(reason.contains("connection refused"), "{reason}");
    }
}
